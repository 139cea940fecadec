"""The agent queue: every pre-reply waits in the catalog for an agent to accept, edit or reject it.

Submitting a query (`submit`) asks the app, then stores, in one transaction:

    content_items    the labelled pre-reply (modality text, model version `support-vN`, file
                     `.genloop/content/…/support-….txt` written first, atomically; params name
                     the generator — template, lm or template-fallback — and the fallback reason,
                     which `Ticket.generator` / `Ticket.fallback_reason` read back)
    publications     its placement on the private `support` channel (the queue; the public
                     gallery and the anonymous API never list this channel)
    support_tickets  the queue row: status `queued`, the masked query, its structured fields,
                     the retrieved sources and the pre-reply body

Deciding (`decide`) is one transaction too: a feedback event on the publication, with the agent
as a pseudonymous viewer (`agent:<name>`) and the idempotency key `support:<ticket>`, plus the
ticket's new status. A ticket is decided once: a second decision is a `TicketDecidedError` (HTTP
409), never a second event.

    accept → like      final_reply = the pre-reply body
    edit   → edit      final_reply = event text = the agent's corrected reply (PII masked)
    reject → dislike   note = the agent's reason (optional)

What is stored, and why. The raw query may hold PII (phone numbers, e-mails, ID numbers); it
is never written anywhere: the ticket keeps `query_masked` (each PII value replaced by its type,
`[PHONE]`), which is what agents read and what `genloop support improve` learns from; PII slots
keep only their type and position, the other slots (order number, product, date, amount) their
values, because the agent needs them to answer. Sources and edits are masked the same way, so
the queue, the console page, the feedback events and the training data hold no raw PII.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update

from genloop.apps.support.app import TOP_K, Answer, SupportApp
from genloop.apps.support.generator import LMGenerator
from genloop.apps.support.registration import ensure_model_version
from genloop.apps.support.reply import mask_pii
from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, Publication, SupportTicket
from genloop.data.steps.pii import redact
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.events import IdempotencyConflictError, as_utc, feedback_transaction, record_feedback_in
from genloop.feedback.kinds import MAX_TEXT_BYTES
from genloop.generate.store import content_path
from genloop.publish.publication import publication_id_for
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

CHANNEL = "support"
STATUSES = ("queued", "accepted", "edited", "rejected")
DECISIONS = {"accept": ("like", "accepted"), "edit": ("edit", "edited"), "reject": ("dislike", "rejected")}
"""decision → (feedback kind, ticket status)."""
TICKET_ID = re.compile(r"[0-9a-f]{32}")
INTENT_LABEL = re.compile(r"[\w][\w .:/-]{0,127}")
MAX_NOTE_CHARS = 2000
TICKETS = cast(Table, SupportTicket.__table__)


class TicketDecidedError(IdempotencyConflictError):
    """The ticket was already decided: one decision per ticket (its idempotency key is taken)."""


@dataclass(frozen=True)
class Ticket:
    id: str
    status: str
    query: str
    """Masked: PII replaced by its type."""
    language: str
    intent: str
    intent_confidence: float
    slots: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    pre_reply: str
    reply_status: str
    final_reply: str | None
    final_intent: str | None
    note: str | None
    content_item_id: str
    publication_id: str
    model_version_id: str
    feedback_event_id: int | None
    decided_by: str | None
    decided_at: datetime | None
    created_by: str
    created_at: datetime
    generator: str = "template"
    """How the pre-reply was composed: template | lm | template-fallback (its content item's params)."""
    fallback_reason: str | None = None

    @classmethod
    def of(cls, row: SupportTicket, params: dict[str, Any] | None = None) -> Ticket:
        params = params or {}
        return cls(
            id=row.id,
            status=row.status,
            query=row.query_masked,
            language=row.language,
            intent=row.intent,
            intent_confidence=row.intent_confidence,
            slots=list(row.slots),
            sources=list(row.sources),
            pre_reply=row.reply_body,
            reply_status=row.reply_status,
            final_reply=row.final_reply,
            final_intent=row.final_intent,
            note=row.note,
            content_item_id=row.content_item_id,
            publication_id=row.publication_id,
            model_version_id=row.model_version_id,
            feedback_event_id=row.feedback_event_id,
            decided_by=row.decided_by,
            decided_at=as_utc(row.decided_at) if row.decided_at else None,
            created_by=row.created_by,
            created_at=as_utc(row.created_at),
            generator=str(params.get("generator") or "template"),
            fallback_reason=params.get("fallback_reason"),
        )


def _masked_sources(answer: Answer) -> list[dict[str, Any]]:
    return [
        {
            "rank": hit.rank,
            "id": hit.entry.id,
            "score": hit.score,
            "method": hit.method,
            "intent": hit.entry.intent,
            "question": redact(hit.entry.question),
            "answer": redact(hit.entry.answer),
        }
        for hit in answer.hits
    ]


def submit(
    workspace: Workspace,
    catalog: Catalog,
    app: SupportApp,
    query: str,
    *,
    actor: str,
    k: int = TOP_K,
    generator: LMGenerator | Literal["config"] | None = "config",
) -> Ticket:
    """Ask the app about `query` and put the pre-reply in the queue; bad input stores nothing.

    `generator` as in `SupportApp.ask`; which one composed the pre-reply (and why an LM's
    sentence fell back to the template) is kept in the content item's params and the ticket."""
    # a DataError for an empty or oversized query, before any write
    answer = app.ask(query, k=k, generator=generator)
    model_version_id = ensure_model_version(workspace, catalog, app)
    ticket_id = uuid.uuid4().hex
    content_id = f"support-{ticket_id}"
    structured, reply = answer.structured, answer.reply
    path = content_path(workspace, content_id, ".txt")
    atomic_write_bytes(path, reply.text.encode("utf-8"))  # the file first: a row never lacks its file
    publication_id = publication_id_for(content_id, CHANNEL)
    with catalog.session() as session:
        session.add(
            ContentItem(
                id=content_id,
                model_version_id=model_version_id,
                modality="text",
                path=workspace.relative(path),
                condition={"intent": structured.intent, "language": structured.language},
                seed=0,
                params={
                    "app_version": app.version,
                    "sources": reply.sources,
                    "ticket": ticket_id,
                    **reply.generation(),
                },
                labels=reply.labels,
                channel=CHANNEL,
                status="published",
                verdicts=[verdict.to_json() for verdict in reply.verdicts],
            )
        )
        session.flush()
        session.add(Publication(id=publication_id, content_item_id=content_id, channel=CHANNEL))
        session.flush()
        row = SupportTicket(
            id=ticket_id,
            content_item_id=content_id,
            publication_id=publication_id,
            model_version_id=model_version_id,
            status="queued",
            query_masked=mask_pii(structured.text, structured.slots),
            language=structured.language,
            intent=structured.intent,
            intent_confidence=structured.intent_confidence,
            slots=[slot.to_json() for slot in structured.slots],
            sources=_masked_sources(answer),
            reply_body=reply.body,
            reply_status=reply.status,
            created_by=actor[:128],
            created_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        return Ticket.of(row, reply.generation())


def check_ticket_id(ticket_id: str) -> str:
    if not isinstance(ticket_id, str) or not TICKET_ID.fullmatch(ticket_id):
        raise NotFoundError(
            f"no support ticket {ticket_id!r}", hint="ticket ids are 32 hex characters: genloop support queue"
        )
    return ticket_id


def get_ticket(catalog: Catalog, ticket_id: str) -> Ticket:
    check_ticket_id(ticket_id)
    with catalog.session() as session:
        row = session.get(SupportTicket, ticket_id)
        if row is None:
            raise _not_found(ticket_id)
        params = session.scalar(select(ContentItem.params).where(ContentItem.id == row.content_item_id))
        return Ticket.of(row, params)


def _not_found(ticket_id: str) -> NotFoundError:
    return NotFoundError(
        f"no support ticket {ticket_id!r}", hint="list the queue: genloop support queue --status any"
    )


def list_tickets(catalog: Catalog, status: str | None = "queued", *, limit: int = 100) -> list[Ticket]:
    """Tickets of `status` (None: every status), oldest first: the order agents work in."""
    if status is not None and status not in STATUSES:
        raise GenloopError(f"unknown ticket status {status!r}", hint=f"one of: {', '.join(STATUSES)}, any")
    query = (
        select(SupportTicket, ContentItem.params)
        .join(ContentItem, ContentItem.id == SupportTicket.content_item_id)
        .order_by(SupportTicket.created_at, SupportTicket.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(SupportTicket.status == status)
    with catalog.session() as session:
        return [Ticket.of(row, params) for row, params in session.execute(query)]


def agent_viewer_id(actor: str) -> str:
    """The agent as a pseudonymous feedback viewer id: `agent:` + the name's safe characters."""
    return "agent:" + (re.sub(r"[^A-Za-z0-9_.:-]", "_", actor)[:58] or "unknown")


def _checked(
    decision: str, text: str | None, intent: str | None, note: str | None
) -> tuple[str | None, str | None, str | None]:
    """(masked text, intent, note) after checking them; a GenloopError (400) names what is wrong."""
    if decision not in DECISIONS:
        raise GenloopError(f"unknown decision {decision!r}", hint="accept, edit or reject")
    if decision == "edit":
        if not text or not text.strip():
            raise GenloopError("an edit needs the corrected reply", hint="send the reply as it should be")
        text = redact(text.strip())
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES or "\x00" in text:
            raise GenloopError(
                f"the corrected reply is over {MAX_TEXT_BYTES} bytes or holds a NUL character",
                hint="send one reply of at most 8 KiB of text",
            )
    elif text is not None:
        raise GenloopError(f"{decision} takes no text", hint="send the corrected reply with edit")
    if intent is not None and (decision == "reject" or not INTENT_LABEL.fullmatch(intent.strip())):
        raise GenloopError(
            f"invalid intent {intent!r} for {decision}",
            hint="accept and edit may confirm an intent: 1-128 letters, digits, space or _ . : / -",
        )
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise GenloopError(f"the note is over {MAX_NOTE_CHARS} characters", hint="say it shorter")
    return text, intent.strip() if intent else None, redact(note.strip()) if note and note.strip() else None


def decide(
    catalog: Catalog,
    ticket_id: str,
    decision: str,
    *,
    actor: str,
    text: str | None = None,
    intent: str | None = None,
    note: str | None = None,
) -> Ticket:
    """Accept, edit or reject a queued ticket: one feedback event + the ticket's status, atomically."""
    check_ticket_id(ticket_id)
    text, intent, note = _checked(decision, text, intent, note)
    kind, status = DECISIONS[decision]
    with feedback_transaction(catalog) as connection:
        row = connection.execute(select(TICKETS).where(TICKETS.c.id == ticket_id)).mappings().first()
        if row is None:
            raise _not_found(ticket_id)
        if row["status"] != "queued":
            raise _decided(ticket_id, row["status"], row["decided_by"])
        event = record_feedback_in(
            connection,
            publication_id=row["publication_id"],
            kind=kind,
            viewer_id=agent_viewer_id(actor),
            idempotency_key=f"support:{ticket_id}",
            text=text,
            meta={"ticket": ticket_id, "decision": decision},
        )
        final = text if decision == "edit" else row["reply_body"] if decision == "accept" else None
        changed = connection.execute(
            update(TICKETS)
            .where(TICKETS.c.id == ticket_id, TICKETS.c.status == "queued")
            .values(
                status=status,
                final_reply=final,
                final_intent=(intent or row["intent"]) if decision != "reject" else None,
                note=note,
                feedback_event_id=event.id,
                decided_by=actor[:128],
                decided_at=datetime.now(UTC),
            )
        ).rowcount
        if event.replayed or changed != 1:  # another agent decided between our read and our write
            raise _decided(ticket_id, "decided", None)
    return get_ticket(catalog, ticket_id)


def _decided(ticket_id: str, status: str, by: str | None) -> TicketDecidedError:
    who = f" by {by}" if by else ""
    return TicketDecidedError(
        f"support ticket {ticket_id} is already {status}{who}; a ticket is decided once",
        hint="reload the queue; a wrong decision is corrected by improving from the next tickets",
    )

"""Learning from the agents: decided tickets → knowledge entries and intent labels → a new app version.

    edited ticket    → entry: question = the masked query, answer = the agent's reply without the
                       template's greeting / lead / closing paragraphs, intent = the intent the
                       agent confirmed (or corrected)
    accepted ticket  → entry: question = the masked query, answer = the source the pre-reply quoted
                       (the agent confirmed it answers this query), intent = the confirmed intent
    rejected ticket  → nothing: a dislike says what is wrong, not what is right

`improve_support` reads every decided ticket (so rounds accumulate), rebuilds the app from its
own source (the built-in corpus or the ticket file named in its manifest, same embeddings and
held-out share) plus these entries — retraining the intent model and rebuilding the index — and
registers the result as `support-vN+1`, whose parent is the version that wrote the pre-replies
and whose manifest (and run config) lists the feedback events it learned from:

    feedback_events → publications → content_items → support-vN  ←parent─  support-vN+1 (events …)

Learned entries are in the `train` split: their question is indexed and trains the intent model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from genloop.apps.support.app import SupportApp, build_support
from genloop.apps.support.knowledge import Entry
from genloop.apps.support.registration import ensure_model_version
from genloop.apps.support.reply import TEMPLATES
from genloop.apps.support.slots import ORDER
from genloop.catalog import Catalog
from genloop.catalog.models import SupportTicket
from genloop.errors import GenloopError
from genloop.workspace import Workspace

LEARNED_STATUSES = ("accepted", "edited")


@dataclass(frozen=True)
class Improvement:
    app: SupportApp
    model_version_id: str
    parent_model_version_id: str
    feedback_events: list[int]
    edited: int
    accepted: int


def _template_paragraph(paragraph: str) -> bool:
    """True for the pre-reply template's own words (greeting, lead, closing, notices)."""
    for words in TEMPLATES.values():
        for key, template in words.items():
            if key == "related":
                continue
            fixed = template.split("{")[0].strip()
            if paragraph == template.strip() or (fixed and "{" in template and paragraph.startswith(fixed)):
                return True
    return False


def answer_of_edit(reply: str) -> str:
    """The agent's answer inside an edited reply: its paragraphs that are not template words."""
    paragraphs = [p.strip() for p in reply.replace("\r\n", "\n").split("\n\n") if p.strip()]
    kept = [p for p in paragraphs if not _template_paragraph(p)]
    return "\n".join(kept or paragraphs)


def _question(ticket: SupportTicket) -> str:
    """The masked query without order ids: they name one customer's order, not the problem."""
    text = ticket.query_masked
    for slot in ticket.slots:
        if slot.get("type") == ORDER:
            text = text.replace(str(slot.get("value", "")), " ")
    return " ".join(text.split())


def learned_entries(catalog: Catalog) -> tuple[list[Entry], list[int], dict[str, int]]:
    """(entries, the feedback event ids they came from, counts per status) of every decided ticket."""
    with catalog.session() as session:
        tickets = list(
            session.scalars(
                select(SupportTicket)
                .where(SupportTicket.status.in_(LEARNED_STATUSES))
                .order_by(SupportTicket.decided_at.desc(), SupportTicket.id)  # newest decision wins
            )
        )
    entries, events = [], []
    counts = {status: 0 for status in LEARNED_STATUSES}
    for ticket in tickets:
        if ticket.status == "edited":
            answer = answer_of_edit(ticket.final_reply or "")
        else:
            answer = str(ticket.sources[0]["answer"]) if ticket.sources else ""
        question = _question(ticket)
        if not question or not answer or ticket.feedback_event_id is None:
            continue
        counts[ticket.status] += 1
        events.append(ticket.feedback_event_id)
        entries.append(
            Entry(
                id=f"feedback-{ticket.feedback_event_id}",
                question=question,
                answer=answer,
                intent=ticket.final_intent or ticket.intent,
                language=ticket.language if ticket.language in ("en", "zh") else "",
                split="train",
                source=f"support-feedback:{ticket.feedback_event_id}",
            )
        )
    return entries, sorted(events), counts


def improve_support(workspace: Workspace, catalog: Catalog) -> Improvement:
    """Rebuild the app with what agents accepted and corrected; register it as the next version."""
    current = SupportApp.load(workspace)
    parent = ensure_model_version(workspace, catalog, current)
    entries, events, counts = learned_entries(catalog)
    if not entries:
        raise GenloopError(
            "no accepted or edited support tickets to learn from",
            hint="agents decide tickets first: the console's Support page, or genloop support decide",
        )
    manifest = current.manifest
    tickets = manifest.get("tickets")
    if tickets is None and not str(manifest.get("source", "")).startswith("chatterbot-corpus"):
        raise GenloopError(  # built before the manifest named its ticket file: do not switch sources
            f"the support app was built from {manifest.get('source')}, and its manifest does not say where",
            hint="rebuild it once: genloop support build --tickets FILE; then genloop support improve",
        )
    if tickets is not None and not Path(tickets).is_file():
        raise GenloopError(
            f"the ticket file the support app was built from is gone: {tickets}",
            hint="put it back, or rebuild: genloop support build --tickets FILE",
        )
    languages = tuple(manifest.get("languages") or ("en", "zh"))
    improved = build_support(
        workspace,
        tickets=Path(tickets) if tickets else None,
        embeddings=str(manifest["embeddings"]),
        heldout_percent=int(manifest["heldout_percent"]),
        languages=languages,
        learned=entries,
        lineage={
            "parent_model_version": parent,
            "parent_app_version": current.version,
            "feedback_events": events,
        },
    )
    version_id = ensure_model_version(workspace, catalog, improved)
    return Improvement(improved, version_id, parent, events, counts["edited"], counts["accepted"])

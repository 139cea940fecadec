"""Feedback events: one reaction of one pseudonymous viewer to one publication.

Events are append-only rows in the catalog. What an event may be (kinds, value, text)
is checked in `kinds.py`; repeats of the same reaction are folded in `dedup.py`.

A client that retries a request sends the same `idempotency_key`, and gets the event
it already created instead of a second row: the key is unique in the table, so two
concurrent requests with one key cannot both insert (the loser of the race reads the
winner's row). Events without a client key get a derived key from `dedup.py`, so the
same race is settled the same way for repeated impressions, clicks and reactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent, Publication
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.dedup import decide
from genloop.feedback.kinds import (
    FEEDBACK_KINDS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_VIEWER_ID_CHARS,
    validate_event,
)

__all__ = [
    "FEEDBACK_KINDS",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "MAX_VIEWER_ID_CHARS",
    "FeedbackEventInfo",
    "IdempotencyConflictError",
    "as_utc",
    "record_feedback",
]


class IdempotencyConflictError(GenloopError):
    """An idempotency key was reused for a different event (other publication, kind or viewer)."""


@dataclass(frozen=True)
class FeedbackEventInfo:
    id: int
    publication_id: str
    kind: str
    value: float | None
    viewer_id: str
    idempotency_key: str | None
    created_at: datetime
    replayed: bool
    """True when this repeats a stored event (same key, or a de-duplicated repeat): that event."""
    text: str | None = None
    meta: dict[str, Any] | None = None


def record_feedback(
    catalog: Catalog,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    idempotency_key: str | None = None,
    value: float | None = None,
    text: str | None = None,
    meta: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> FeedbackEventInfo:
    """Store one feedback event, or return the stored one it repeats (`replayed=True`).

    `at` backdates the event (simulations, backfills); the default is now (UTC).
    """
    validate_event(
        kind=kind, viewer_id=viewer_id, idempotency_key=idempotency_key, value=value, text=text, meta=meta
    )
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    with catalog.session() as session:
        if session.get(Publication, publication_id) is None:
            raise NotFoundError(
                f"publication {publication_id!r} is not in the catalog",
                hint="publication ids are listed by GET /api/v1/publications and `genloop publish`",
            )
        if idempotency_key is not None:
            existing = _find_by_key(session, idempotency_key)
            if existing is not None:
                return _replay(existing, publication_id=publication_id, kind=kind, viewer_id=viewer_id)
        decision = decide(
            session, publication_id=publication_id, kind=kind, viewer_id=viewer_id, value=value, at=moment
        )
        if decision.duplicate_of is not None:
            return _info(decision.duplicate_of, replayed=True)
    key = idempotency_key or decision.derived_key
    try:
        with catalog.session() as session:
            event = FeedbackEvent(
                publication_id=publication_id,
                kind=kind,
                value=value,
                viewer_id=viewer_id,
                idempotency_key=key,
                created_at=moment,
                text=text,
                meta=meta,
            )
            session.add(event)
            session.flush()
            return _info(event, replayed=False)
    except IntegrityError:
        # Another request inserted the same key between our lookup and our insert
        # (the unique constraint caught it; the failed transaction is rolled back).
        # A fresh session reads the winner's row on SQLite and PostgreSQL alike.
        if key is None:
            raise
        with catalog.session() as session:
            existing = _find_by_key(session, key)
            if existing is None:
                raise
            return _replay(existing, publication_id=publication_id, kind=kind, viewer_id=viewer_id)


def _find_by_key(session: Session, idempotency_key: str) -> FeedbackEvent | None:
    return session.scalars(
        select(FeedbackEvent).where(FeedbackEvent.idempotency_key == idempotency_key)
    ).one_or_none()


def _replay(existing: FeedbackEvent, *, publication_id: str, kind: str, viewer_id: str) -> FeedbackEventInfo:
    stored = (existing.publication_id, existing.kind, existing.viewer_id)
    if stored != (publication_id, kind, viewer_id):
        raise IdempotencyConflictError(
            f"idempotency key {existing.idempotency_key!r} was already used for another event",
            hint="use a fresh key (a random UUID) for every new event; reuse a key only to retry",
        )
    return _info(existing, replayed=True)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the catalog stores UTC, so say so."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _info(event: FeedbackEvent, *, replayed: bool) -> FeedbackEventInfo:
    return FeedbackEventInfo(
        id=event.id,
        publication_id=event.publication_id,
        kind=event.kind,
        value=event.value,
        viewer_id=event.viewer_id,
        idempotency_key=event.idempotency_key,
        created_at=as_utc(event.created_at),
        replayed=replayed,
        text=event.text,
        meta=event.meta,
    )

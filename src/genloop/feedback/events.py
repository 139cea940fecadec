"""Feedback events: one reaction (like, dislike, ...) of one pseudonymous viewer to one publication.

Events are append-only rows in the catalog. A client that retries a request sends
the same `idempotency_key`, and gets the event it already created instead of a
second row: the key is unique in the table, so two concurrent requests with one key
cannot both insert (the loser of the race reads the winner's row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent, Publication
from genloop.errors import GenloopError, NotFoundError

FEEDBACK_KINDS: tuple[str, ...] = ("like", "dislike")
"""Kinds of feedback the catalog accepts; the serve issue adds impression, click, rating, ..."""

MAX_VIEWER_ID_CHARS = 64
MAX_IDEMPOTENCY_KEY_CHARS = 128


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
    """True when the idempotency key had been seen: this is the event stored earlier."""


def record_feedback(
    catalog: Catalog,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    idempotency_key: str | None = None,
    value: float | None = None,
) -> FeedbackEventInfo:
    """Store one feedback event; a repeated `idempotency_key` returns the stored event."""
    _validate(kind=kind, viewer_id=viewer_id, idempotency_key=idempotency_key, value=value)
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
    try:
        with catalog.session() as session:
            event = FeedbackEvent(
                publication_id=publication_id,
                kind=kind,
                value=value,
                viewer_id=viewer_id,
                idempotency_key=idempotency_key,
            )
            session.add(event)
            session.flush()
            return _info(event, replayed=False)
    except IntegrityError:
        # Another request inserted the same key between our lookup and our insert
        # (the unique constraint caught it; the failed transaction is rolled back).
        # A fresh session reads the winner's row on SQLite and PostgreSQL alike.
        if idempotency_key is None:
            raise
        with catalog.session() as session:
            existing = _find_by_key(session, idempotency_key)
            if existing is None:
                raise
            return _replay(existing, publication_id=publication_id, kind=kind, viewer_id=viewer_id)


def _validate(*, kind: str, viewer_id: str, idempotency_key: str | None, value: float | None) -> None:
    if kind not in FEEDBACK_KINDS:
        raise GenloopError(
            f"unknown feedback kind {kind!r}",
            hint=f"allowed kinds: {', '.join(FEEDBACK_KINDS)}",
        )
    if not viewer_id or len(viewer_id) > MAX_VIEWER_ID_CHARS:
        raise GenloopError(f"viewer id must be 1-{MAX_VIEWER_ID_CHARS} characters (got {len(viewer_id)})")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise GenloopError(
            f"idempotency key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters (got {len(idempotency_key)})"
        )
    if value is not None and not math.isfinite(value):
        raise GenloopError(f"feedback value must be a finite number (got {value!r})")


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
    )

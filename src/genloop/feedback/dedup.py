"""De-duplication of repeated feedback: the same viewer reacting to the same publication again.

Rules (per viewer + publication):

* impression, click: one per `REPEAT_WINDOW` (30 min, sliding). A reload or a double
  click inside the window returns the stored event (`replayed=True`).
* like, dislike: the *latest reaction wins*. A like after a like is a replay; a dislike
  after a like is stored (the viewer changed their mind) and analytics count only each
  viewer's latest reaction (`analytics.current_events`). Events stay append-only.
* rating: the latest rating wins the same way; the same value again is a replay.
* edit, comment, flag: never merged (each one is content; clients send idempotency keys).

Two API workers must agree without talking to each other, so the decision lives in
SQL: the previous event of the slot is read, and a new event gets a *derived*
idempotency key, `dedup:` + a hash of (viewer, publication, kind, value, id of that
previous event). Two concurrent requests that saw the same history derive the same key;
the unique constraint lets one insert and the other reads the winner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from genloop.catalog.models import FeedbackEvent

REPEAT_WINDOW = timedelta(minutes=30)
WINDOWED_KINDS = frozenset({"impression", "click"})
SLOTS: dict[str, tuple[str, ...]] = {
    "impression": ("impression",),
    "click": ("click",),
    "like": ("like", "dislike"),
    "dislike": ("like", "dislike"),
    "rating": ("rating",),
}
"""The kinds whose latest event decides whether a new one repeats it."""


@dataclass(frozen=True)
class DedupDecision:
    duplicate_of: FeedbackEvent | None
    """The stored event this one repeats (return it, store nothing), else None."""
    derived_key: str | None
    """The idempotency key to store a new event under when the client sent none."""


def derived_key(viewer_id: str, publication_id: str, kind: str, value: float | None, after: int) -> str:
    digest = hashlib.sha256(f"{viewer_id}|{publication_id}|{kind}|{value}|{after}".encode()).hexdigest()
    return f"dedup:{digest[:40]}"


def decide(
    session: Session,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    value: float | None,
    at: datetime,
) -> DedupDecision:
    """Whether the event repeats the viewer's previous one of its slot (read in this session)."""
    slot = SLOTS.get(kind)
    if slot is None:
        return DedupDecision(None, None)
    previous = session.scalars(
        select(FeedbackEvent)
        .where(
            FeedbackEvent.viewer_id == viewer_id,
            FeedbackEvent.publication_id == publication_id,
            FeedbackEvent.kind.in_(slot),
        )
        .order_by(FeedbackEvent.id.desc())
        .limit(1)
    ).first()
    if previous is not None and _repeats(previous, kind=kind, value=value, at=at):
        return DedupDecision(previous, None)
    after = previous.id if previous is not None else 0
    return DedupDecision(None, derived_key(viewer_id, publication_id, kind, value, after))


def _repeats(previous: FeedbackEvent, *, kind: str, value: float | None, at: datetime) -> bool:
    if previous.kind != kind:
        return False  # a dislike after a like: the viewer changed their mind
    if kind in WINDOWED_KINDS:
        stored = previous.created_at  # SQLite hands back naive UTC, PostgreSQL aware
        previous_at = stored if stored.tzinfo is not None else stored.replace(tzinfo=UTC)
        return at - previous_at < REPEAT_WINDOW
    if kind == "rating":
        return previous.value == value
    return True

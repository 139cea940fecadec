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
SQL: the previous event of the slot is read (by `events.py`, in the same statement that
checks the publication and the client's key), and a new event gets a *derived*
idempotency key, `dedup:` + a hash of (viewer, publication, kind, value, id of that
previous event). Two concurrent requests that saw the same history derive the same key;
the unique constraint lets one insert and the other reads the winner.

`decide` is pure (no database): it takes that previous event, so the whole rule is
here and the SQL that finds the previous event is written once, in `events.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

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


class StoredEvent(Protocol):
    """What the rule needs of the viewer's previous event of the slot."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class DedupDecision:
    repeats: bool
    """True: the event repeats `previous` (return that one, store nothing)."""
    derived_key: str | None
    """The idempotency key to store a new event under when the client sent none."""


def derived_key(viewer_id: str, publication_id: str, kind: str, value: float | None, after: int) -> str:
    digest = hashlib.sha256(f"{viewer_id}|{publication_id}|{kind}|{value}|{after}".encode()).hexdigest()
    return f"dedup:{digest[:40]}"


def decide(
    previous: StoredEvent | None,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    value: float | None,
    at: datetime,
) -> DedupDecision:
    """Whether the event repeats `previous`, the viewer's latest event of the kind's slot (None: none yet)."""
    if kind not in SLOTS:
        return DedupDecision(repeats=False, derived_key=None)
    if previous is not None and _repeats(previous, kind=kind, value=value, at=at):
        return DedupDecision(repeats=True, derived_key=None)
    after = previous.id if previous is not None else 0
    return DedupDecision(
        repeats=False, derived_key=derived_key(viewer_id, publication_id, kind, value, after)
    )


def _repeats(previous: StoredEvent, *, kind: str, value: float | None, at: datetime) -> bool:
    if previous.kind != kind:
        return False  # a dislike after a like: the viewer changed their mind
    if kind in WINDOWED_KINDS:
        stored = previous.created_at  # SQLite hands back naive UTC, PostgreSQL aware
        previous_at = stored if stored.tzinfo is not None else stored.replace(tzinfo=UTC)
        return at - previous_at < REPEAT_WINDOW
    if kind == "rating":
        return previous.value == value
    return True

"""Per-viewer rate limit of the anonymous feedback endpoint, counted in SQL.

A viewer (the pseudonymous cookie id) may store at most `limit` events per sliding
`window` seconds. The count is a `GROUP BY viewer_id` over the recent events of a group's
viewers (index `ix_feedback_events_viewer_time`), a branch of the statement in which the
group reads the catalog before deciding (`feedback.batch`, `_view`), so every API worker
sees the same number: there is no in-process counter that two workers could disagree on.
Replays (repeats, retries) store nothing and so cost nothing, but a viewer at the limit
is refused before its event is decided, replay or not.

The events of one group are counted in order: a viewer with two events in a group and
one left of the budget gets the first stored and the second refused, as one request
after the other would.

Configuration (read for each group of events stored, so tests and operators can change it live):

    GENLOOP_FEEDBACK_RATE_LIMIT = "120/60"   # events / seconds per viewer (the default)
    GENLOOP_FEEDBACK_RATE_LIMIT = "off"      # no limit (benchmarks on loopback)

Over the limit: `RateLimitedError`, which the API answers with 429 and `Retry-After`
(seconds until the oldest counted event leaves the window). A client that drops its
cookie gets a fresh viewer id, so this bounds a browser, not an attacker; put a
per-address limit in the reverse proxy for that.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from genloop.errors import ConfigError, GenloopError
from genloop.feedback.events import as_utc

__all__ = ["RATE_LIMIT_ENV", "RateLimit", "RateLimitedError", "ViewerBudgets", "configured_rate_limit"]

RATE_LIMIT_ENV = "GENLOOP_FEEDBACK_RATE_LIMIT"
DEFAULT_LIMIT = 120
DEFAULT_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window: float
    """Seconds."""


class RateLimitedError(GenloopError):
    """A viewer stored `limit` events in the last `window` seconds (HTTP 429)."""

    def __init__(self, retry_after: int, limit: int, window: float) -> None:
        super().__init__(
            f"too much feedback from this viewer: at most {limit} events per {window:g} s; "
            f"retry after {retry_after} s",
            hint="wait for Retry-After seconds, then send again",
        )
        self.retry_after = retry_after


def configured_rate_limit() -> RateLimit | None:
    """The limit from `GENLOOP_FEEDBACK_RATE_LIMIT` ("N/SECONDS" or "off"); the default when unset."""
    return _parse_rate_limit(os.environ.get(RATE_LIMIT_ENV, ""))


@lru_cache(maxsize=8)
def _parse_rate_limit(setting: str) -> RateLimit | None:
    raw = setting.strip().lower()
    if not raw:
        return RateLimit(DEFAULT_LIMIT, DEFAULT_WINDOW_SECONDS)
    if raw in {"off", "none", "0"}:
        return None
    count, _, seconds = raw.partition("/")
    try:
        parsed = RateLimit(int(count), float(seconds or DEFAULT_WINDOW_SECONDS))
    except ValueError:
        parsed = RateLimit(0, 0)
    if parsed.limit < 1 or parsed.window <= 0:
        raise ConfigError(
            f"{RATE_LIMIT_ENV}={raw!r} is not a rate limit",
            hint=f'write events per seconds, e.g. "{DEFAULT_LIMIT}/{DEFAULT_WINDOW_SECONDS}", or "off"',
        )
    return parsed


class ViewerBudgets:
    """What each viewer of a group may still store, read once, then spent event by event."""

    def __init__(
        self, rate_limit: RateLimit, recent: Iterable[tuple[str, int, datetime]], *, now: datetime
    ) -> None:
        """`recent`: per viewer with events in the window, their count and the oldest's time
        (the "recent" rows of the batch's view, feedback/batch.py: one GROUP BY viewer_id)."""
        self.rate_limit = rate_limit
        self.now = now
        self.counts: dict[str, int] = {}
        self.oldest: dict[str, datetime] = {}
        for viewer_id, count, oldest in recent:
            self.counts[viewer_id] = int(count)
            self.oldest[viewer_id] = as_utc(oldest)

    def refusal(self, viewer_id: str) -> RateLimitedError | None:
        """Why this viewer's next event is refused (its budget is spent); None when it may go on."""
        limit, window = self.rate_limit.limit, self.rate_limit.window
        if self.counts.get(viewer_id, 0) < limit:
            return None
        oldest = self.oldest.get(viewer_id, self.now)
        wait = (oldest + timedelta(seconds=window) - self.now).total_seconds()
        return RateLimitedError(max(1, math.ceil(wait)), limit, window)

    def spend(self, viewer_id: str) -> None:
        """One more event of this viewer stored in the group."""
        self.counts[viewer_id] = self.counts.get(viewer_id, 0) + 1
        self.oldest.setdefault(viewer_id, self.now)

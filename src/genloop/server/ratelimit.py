"""Per-viewer rate limit for the anonymous feedback endpoint, counted in SQL.

A viewer (the pseudonymous cookie id) may store at most `limit` events per sliding
`window` seconds. The count is a `SELECT count(*)` over that viewer's recent events
(index `ix_feedback_events_viewer_time`), so every API worker sees the same number:
there is no in-process counter that two workers could disagree on. Replays (repeats,
retries) store nothing and so cost nothing.

The count runs on the connection that then records the event (`feedback_transaction`),
as one statement compiled once per process: one index range scan per request.

Configuration (read on each request, so tests and operators can change it live):

    GENLOOP_FEEDBACK_RATE_LIMIT = "120/60"   # events / seconds per viewer (the default)
    GENLOOP_FEEDBACK_RATE_LIMIT = "off"      # no limit (benchmarks on loopback)

Over the limit: 429 with `Retry-After` (seconds until the oldest counted event leaves
the window). A client that drops its cookie gets a fresh viewer id, so this bounds a
browser, not an attacker; put a per-address limit in the reverse proxy for that.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from fastapi import HTTPException, status
from sqlalchemy import Connection, bindparam, func, select

from genloop.errors import ConfigError
from genloop.feedback.events import EVENTS

RATE_LIMIT_ENV = "GENLOOP_FEEDBACK_RATE_LIMIT"
DEFAULT_LIMIT = 120
DEFAULT_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window: float
    """Seconds."""


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


class RateLimited(HTTPException):
    """429 Too Many Requests, with the seconds to wait in `Retry-After`."""

    def __init__(self, retry_after: int, limit: int, window: float) -> None:
        super().__init__(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too much feedback from this viewer: at most {limit} events per {window:g} s; "
            f"retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


_RECENT_EVENTS = select(func.count(), func.min(EVENTS.c.created_at)).where(
    EVENTS.c.viewer_id == bindparam("viewer_id"), EVENTS.c.created_at >= bindparam("since")
)
"""How many events the viewer stored since `since`, and the oldest one's time."""


def enforce_viewer_rate_limit(
    connection: Connection, viewer_id: str, *, limit: int, window: float, now: datetime | None = None
) -> int:
    """Raise `RateLimited` when the viewer stored `limit` events in the last `window` s; else the count."""
    moment = now or datetime.now(UTC)
    since = moment - timedelta(seconds=window)
    count, oldest = connection.execute(_RECENT_EVENTS, {"viewer_id": viewer_id, "since": since}).one()
    if count < limit:
        return int(count)
    oldest_at = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=UTC)
    wait = (oldest_at + timedelta(seconds=window) - moment).total_seconds()
    raise RateLimited(max(1, math.ceil(wait)), limit, window)

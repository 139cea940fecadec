"""Feedback of concurrent requests, stored together: one transaction per group (group commit).

    request ─┐                        ┌─ SELECT publications / keys / latest per slot / budgets
    request ─┼─▶ pending (this loop) ─┼─ INSERT … (one multi-row statement)
    request ─┘   while a group is     └─ COMMIT                  ─▶ each request gets its events
                 being stored

The gallery sends one event per request, and integrations send small batches. Stored one
transaction per request, each paid its own lookups, insert and commit (≈ 1 ms of Python on
SQLite for one event, more on PostgreSQL), and one process took 460-760 single events/s.
Here a request's events join the group waiting for the catalog; when the group before it
is committed, the whole waiting group goes in as one batch (`feedback.batch.
record_feedback_batch`, whose result for each event is the one storing the events one by
one, in arrival order, would give; the per-viewer rate limit included). Nothing waits on a
timer: a lone request is stored at once, and under load a group is as large as the requests
that arrived while the last one was being stored ("natural" group commit, as databases do
for their log).

Each request still answers only after its events are committed, so a 2xx still means
stored, and a crash loses only events that were never answered. When a group fails as a
whole (a database error), its requests are retried one transaction each, so one request
whose events the database refuses cannot fail the others, and a batch request keeps its
promise that a failure stores none of it.

The groups of a burst (one after the other, while requests keep arriving) are stored on
one connection, checked out of the pool when the burst starts and returned when nothing
waits (`_HeldConnection`): the pool's pre-ping (a round trip on PostgreSQL) is paid once per
burst, not once per group. On PostgreSQL that connection is in autocommit mode, so a group
that writes once (one multi-row INSERT, the usual case) is two round trips, its view and its
INSERT, instead of BEGIN, view, INSERT, COMMIT; a group that writes more opens a transaction
before its first write (feedback/batch.py, `_Batch._write`).

Single events (anonymous, rate-limited per viewer) and batches (an editor's, not limited)
queue apart. State is per event loop and per catalog, and holds only events not yet stored:
two workers each group their own requests, and the database's keys and locks decide between
them, as before.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection

from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.feedback.batch import NewEvent, record_feedback_batch
from genloop.feedback.events import FeedbackEventInfo, feedback_transaction
from genloop.feedback.ratelimit import configured_rate_limit
from genloop.server.writers import run_write

MAX_GROUP_EVENTS = 1000
"""Events per transaction at most (a request is never split); more waiting go in the next group."""

Outcome = FeedbackEventInfo | GenloopError
Lane = Literal["single", "batch"]
"""Anonymous single events (rate-limited per viewer) or an editor's batches (not limited)."""


@dataclass
class _Request:
    events: Sequence[NewEvent]
    answer: asyncio.Future[list[Outcome]]


@dataclass
class _Queue:
    """The requests waiting on one loop for one catalog and lane, and whether a group is being stored."""

    lane: Lane
    pending: list[_Request] = field(default_factory=list)
    storing: bool = False
    task: asyncio.Task[None] | None = None
    """The task storing groups: the loop keeps only a weak reference to a task."""


_queues: weakref.WeakKeyDictionary[
    Catalog, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Lane, _Queue]]
]
_queues = weakref.WeakKeyDictionary()
_queues_guard = threading.Lock()


def _queue(catalog: Catalog, loop: asyncio.AbstractEventLoop, lane: Lane) -> _Queue:
    with _queues_guard:
        per_loop = _queues.setdefault(catalog, weakref.WeakKeyDictionary())
        lanes = per_loop.setdefault(loop, {})
        queue = lanes.get(lane)
        if queue is None:
            queue = lanes[lane] = _Queue(lane)
        return queue


async def record_grouped(catalog: Catalog, event: NewEvent) -> FeedbackEventInfo:
    """Store one viewer's `event` in the next group, under the per-viewer rate limit
    (feedback/ratelimit.py): the stored (or replayed) event, or raise why it was refused."""
    (outcome,) = await _submit(catalog, "single", [event])
    if isinstance(outcome, GenloopError):
        raise outcome
    return outcome


async def record_batch_grouped(catalog: Catalog, events: Sequence[NewEvent]) -> list[Outcome]:
    """Store a batch's `events` in the next group, with no rate limit: each event's result in order
    (stored, replayed, or why it was refused), as `record_feedback_batch` gives them."""
    return await _submit(catalog, "batch", events)


async def _submit(catalog: Catalog, lane: Lane, events: Sequence[NewEvent]) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    queue = _queue(catalog, loop, lane)
    answer: asyncio.Future[list[Outcome]] = loop.create_future()
    queue.pending.append(_Request(events, answer))
    if not queue.storing:
        queue.storing = True
        queue.task = loop.create_task(_store_groups(catalog, queue))
    return await answer


def _next_group(queue: _Queue) -> list[_Request]:
    """The longest run of waiting requests within MAX_GROUP_EVENTS (at least one request)."""
    size, count = 0, 0
    for request in queue.pending:
        size += len(request.events)
        if count and size > MAX_GROUP_EVENTS:
            break
        count += 1
    group, queue.pending = queue.pending[:count], queue.pending[count:]
    return group


class _HeldConnection:
    """The connection a burst of groups is stored on, kept between its groups.

    Checking a connection out of the pool runs the engine's pre-ping, a `SELECT 1` round
    trip on PostgreSQL: ≈ 19 % of the writer thread's time in a served run when it was one
    of five round trips per group (py-spy, 16 clients, single events; now it would be one of
    three). A burst's groups follow each other within milliseconds, so the ping runs once,
    when the burst's first group checks the connection out.

    Used on the writer thread; `release` may come from the event loop's thread, while a
    group is still being stored when the loop shuts down: then the writer returns the
    connection to the pool when it is done with it.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.connection: Connection | None = None
        self.released = False
        self.lock = threading.Lock()

    def store(self, lane: Lane, group: list[_Request]) -> list[list[Outcome]]:
        """`_store` on the held connection (checked out on first use); a group that fails
        returns it to the pool (it may be the connection that failed)."""
        try:
            with self.lock:
                if self.released:  # the burst ended under us (loop shutdown): a pooled connection
                    return _store(self.catalog, lane, group)
                if self.connection is None:
                    self.connection = self._connect()
                try:
                    return _store(self.catalog, lane, group, self.connection)
                except BaseException:
                    self._close()
                    raise
        finally:
            if self.released:
                self.release()

    def _connect(self) -> Connection:
        """A pooled connection; on PostgreSQL in autocommit mode, so that a group's one INSERT
        commits itself (two round trips a group, not four: feedback/batch.py, `_Batch._write`).
        The pool resets the mode when the connection goes back."""
        connection = self.catalog.engine.connect()
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    def release(self) -> None:
        """Return the connection to the pool now, or (while a group is stored) when that ends."""
        self.released = True
        if self.lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self.lock.release()

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()


async def _store_groups(catalog: Catalog, queue: _Queue) -> None:
    """Store groups until nothing waits; each group is what arrived while the last was stored."""
    group: list[_Request] = []
    held = _HeldConnection(catalog)
    try:
        while queue.pending:
            group = _next_group(queue)
            answers: list[list[Outcome] | Exception]
            try:
                answers = await run_write(catalog, _store_group, held, queue.lane, group)
            except Exception as error:  # the executor refused the call (shut down): nothing ran
                answers = [error] * len(group)
            for request, answer in zip(group, answers, strict=True):
                if request.answer.done():  # the client went away; its events are stored all the same
                    continue
                if isinstance(answer, BaseException):
                    request.answer.set_exception(answer)
                else:
                    request.answer.set_result(answer)
            group = []
    finally:
        held.release()
        # Only when the loop shuts down under us: no waiting request may hang. A group
        # already sent to the writer is still stored or not as a whole; its requests are
        # cancelled, as a request cut off by the shutdown would be.
        for request in [*group, *queue.pending]:
            request.answer.cancel()
        queue.pending = []
        queue.storing = False
        queue.task = None


def _store_group(held: _HeldConnection, lane: Lane, group: list[_Request]) -> list[list[Outcome] | Exception]:
    """The group in one transaction; if that fails as a whole, each request in its own
    (on connections from the pool: the held one was returned when the group failed)."""
    try:
        return list(held.store(lane, group))
    except Exception as error:
        if len(group) == 1:
            return [error]
    answers: list[list[Outcome] | Exception] = []
    for request in group:
        try:
            answers.extend(_store(held.catalog, lane, [request]))
        except Exception as error:
            answers.append(error)
    return answers


def _store(
    catalog: Catalog, lane: Lane, group: list[_Request], connection: Connection | None = None
) -> list[list[Outcome]]:
    """One transaction for the group's events, in arrival order; the outcomes split per request.
    On `connection` when given, else on one from the pool."""
    # the rate limit is read per group, so operators and tests can change it live
    rate_limit = configured_rate_limit() if lane == "single" else None
    with feedback_transaction(catalog, connection) as connection:
        outcomes = record_feedback_batch(
            connection, [event for request in group for event in request.events], rate_limit=rate_limit
        )
    answers, start = [], 0
    for request in group:
        answers.append(outcomes[start : start + len(request.events)])
        start += len(request.events)
    return answers

"""Group commit of single feedback events: concurrent events share one transaction, and each
request still gets the answer storing it alone would give (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy.exc
from sqlalchemy import event, func, select, text

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.errors import NotFoundError
from genloop.feedback.batch import NewEvent
from genloop.feedback.events import FeedbackEventInfo, IdempotencyConflictError
from genloop.feedback.ratelimit import RATE_LIMIT_ENV, RateLimitedError
from genloop.server.group_commit import record_batch_grouped, record_grouped

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog


def _stored(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


@pytest.fixture
def commits(seeded: SeededCatalog) -> Iterator[list[int]]:
    """One entry per transaction committed on the catalog's engine."""
    seen: list[int] = []

    def on_commit(_connection: Any) -> None:
        seen.append(1)

    event.listen(seeded.catalog.engine, "commit", on_commit)
    yield seen
    event.remove(seeded.catalog.engine, "commit", on_commit)


def _at_once(catalog: Catalog, events: list[NewEvent]) -> list[FeedbackEventInfo | BaseException]:
    """Each event from its own concurrent request, as 16 gallery clients send them."""

    async def all_at_once() -> list[FeedbackEventInfo | BaseException]:
        return await asyncio.gather(*(record_grouped(catalog, e) for e in events), return_exceptions=True)

    return asyncio.run(all_at_once())


def test_concurrent_events_share_one_transaction_and_each_gets_its_own_event(
    seeded: SeededCatalog, commits: list[int]
) -> None:
    pubs = seeded.publication_ids
    events = [
        NewEvent(publication_id=pubs[i % len(pubs)], kind="like", viewer_id=f"viewer_{i:02d}")
        for i in range(16)
    ]
    answers = _at_once(seeded.catalog, events)
    assert len(commits) == 1  # one transaction for the 16, not 16
    assert all(isinstance(a, FeedbackEventInfo) and not a.replayed for a in answers), answers
    infos = [a for a in answers if isinstance(a, FeedbackEventInfo)]
    assert [(a.viewer_id, a.publication_id) for a in infos] == [
        (e.viewer_id, e.publication_id) for e in events
    ]
    assert len({a.id for a in infos}) == 16
    assert [a.id for a in infos] == sorted(a.id for a in infos)  # stored in the order they came
    assert _stored(seeded.catalog) == 16
    # a lone event later is stored at once, in a group of its own
    commits.clear()
    assert isinstance(_at_once(seeded.catalog, events[:1])[0], FeedbackEventInfo)
    assert len(commits) == 1


def test_each_event_of_a_group_is_answered_as_if_stored_alone(seeded: SeededCatalog) -> None:
    pub, other = seeded.publication_ids[:2]
    events = [
        NewEvent(publication_id=pub, kind="like", viewer_id="viewer_a", idempotency_key="key-0001"),
        NewEvent(publication_id=pub, kind="dislike", viewer_id="viewer_a"),  # replaces the like
        NewEvent(publication_id=pub, kind="like", viewer_id="viewer_a", idempotency_key="key-0001"),  # retry
        NewEvent(publication_id=other, kind="like", viewer_id="viewer_b", idempotency_key="key-0001"),
        NewEvent(publication_id="no-such-publication", kind="like", viewer_id="viewer_c"),
        NewEvent(publication_id=other, kind="click", viewer_id="viewer_d"),
    ]
    like, dislike, retry, conflict, unknown, click = _at_once(seeded.catalog, events)
    assert isinstance(like, FeedbackEventInfo) and not like.replayed and like.supersedes is None
    assert isinstance(dislike, FeedbackEventInfo) and dislike.supersedes == "like"
    assert isinstance(retry, FeedbackEventInfo) and retry.replayed and retry.id == like.id
    assert isinstance(conflict, IdempotencyConflictError)
    assert isinstance(unknown, NotFoundError)
    assert isinstance(click, FeedbackEventInfo) and not click.replayed
    assert _stored(seeded.catalog) == 3  # like, dislike, click; refusals store nothing


def test_the_rate_limit_counts_the_events_earlier_in_the_group(
    seeded: SeededCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_LIMIT_ENV, "3/60")
    pubs = seeded.publication_ids
    events = [NewEvent(publication_id=pubs[i], kind="like", viewer_id="eager_viewer") for i in range(5)]
    events.append(NewEvent(publication_id=pubs[0], kind="like", viewer_id="calm_viewer"))
    answers = _at_once(seeded.catalog, events)
    assert [type(a).__name__ for a in answers] == ["FeedbackEventInfo"] * 3 + ["RateLimitedError"] * 2 + [
        "FeedbackEventInfo"
    ]
    refused = answers[3]
    assert isinstance(refused, RateLimitedError) and 1 <= refused.retry_after <= 60
    assert _stored(seeded.catalog) == 4
    # the next group reads the three stored ones back from the catalog
    later = _at_once(
        seeded.catalog, [NewEvent(publication_id=pubs[5], kind="like", viewer_id="eager_viewer")]
    )
    assert isinstance(later[0], RateLimitedError)


@pytest.fixture
def poisoned_key(seeded: SeededCatalog) -> Iterator[str]:
    """A trigger that makes the database refuse one idempotency key (a failure no check foresees)."""
    key = "poison-0001"
    engine = seeded.catalog.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON feedback_events "
                    f"WHEN NEW.idempotency_key = '{key}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.idempotency_key = '{key}' THEN RAISE EXCEPTION 'poisoned'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON feedback_events "
                    "FOR EACH ROW EXECUTE FUNCTION poison()"
                )
            )
    yield key
    with engine.begin() as connection:
        connection.execute(
            text("DROP TRIGGER poison" + ("" if engine.dialect.name == "sqlite" else " ON feedback_events"))
        )
        if engine.dialect.name != "sqlite":
            connection.execute(text("DROP FUNCTION poison()"))


def test_an_event_the_database_refuses_does_not_fail_the_rest_of_its_group(
    seeded: SeededCatalog, poisoned_key: str, commits: list[int]
) -> None:
    pubs = seeded.publication_ids
    events = [NewEvent(publication_id=pubs[i], kind="like", viewer_id=f"viewer_{i}") for i in range(4)]
    events.insert(
        2, NewEvent(publication_id=pubs[0], kind="click", viewer_id="v", idempotency_key=poisoned_key)
    )
    answers = _at_once(seeded.catalog, events)
    assert len(commits) == 4  # the group failed whole, then each event went alone: 4 stored
    assert isinstance(answers[2], sqlalchemy.exc.DBAPIError) and "poisoned" in str(answers[2])
    assert all(isinstance(answers[i], FeedbackEventInfo) for i in (0, 1, 3, 4))
    assert _stored(seeded.catalog) == 4


def test_a_group_that_writes_twice_then_fails_keeps_none_of_its_first_write(
    seeded: SeededCatalog, poisoned_key: str, commits: list[int]
) -> None:
    """A like and then a dislike by one viewer make the group insert the like first (the
    dislike's derived key names it); the poisoned event then fails the group's last INSERT.
    On PostgreSQL the group runs in autocommit mode, where the first write opens the
    transaction: the like must be rolled back with the rest, so that storing it again alone
    answers it as new (not as a replay of a like that survived)."""
    pub = seeded.publication_ids[0]
    events = [
        NewEvent(publication_id=pub, kind="like", viewer_id="viewer_x"),
        NewEvent(publication_id=pub, kind="dislike", viewer_id="viewer_x"),
        NewEvent(publication_id=pub, kind="click", viewer_id="viewer_y", idempotency_key=poisoned_key),
    ]
    answers = _at_once(seeded.catalog, events)
    like, dislike, poisoned = answers
    assert isinstance(like, FeedbackEventInfo) and not like.replayed
    assert isinstance(dislike, FeedbackEventInfo) and dislike.supersedes == "like"
    assert isinstance(poisoned, sqlalchemy.exc.DBAPIError)
    assert len(commits) == 2 and _stored(seeded.catalog) == 2  # the group's, rolled back; then each alone
    assert seeded.catalog.engine.pool.checkedout() == 0


def test_a_request_that_goes_away_leaves_its_event_stored_and_the_others_answered(
    seeded: SeededCatalog,
) -> None:
    pubs = seeded.publication_ids

    async def one_leaves() -> list[FeedbackEventInfo | BaseException]:
        tasks = [
            asyncio.ensure_future(record_grouped(seeded.catalog, NewEvent(pubs[i], "like", f"viewer_{i}")))
            for i in range(3)
        ]
        await asyncio.sleep(0)  # all three are waiting in the group now
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(one_leaves())
    assert isinstance(answers[1], asyncio.CancelledError)
    assert isinstance(answers[0], FeedbackEventInfo) and isinstance(answers[2], FeedbackEventInfo)
    assert _stored(seeded.catalog) == 3  # the group was stored whole; only the answer was dropped


def test_groups_work_on_each_new_event_loop(seeded: SeededCatalog) -> None:
    """TestClient without `with`, and each `asyncio.run`, bring a new loop: no state is left behind."""
    pub = seeded.publication_ids[0]
    run: Callable[[Awaitable[FeedbackEventInfo]], FeedbackEventInfo] = asyncio.run
    first = run(record_grouped(seeded.catalog, NewEvent(pub, "like", "viewer_x")))
    second = run(record_grouped(seeded.catalog, NewEvent(pub, "dislike", "viewer_x")))
    assert second.supersedes == "like" and second.id > first.id


def test_concurrent_batches_share_a_transaction_and_a_refused_batch_stores_none_of_itself(
    seeded: SeededCatalog, poisoned_key: str, commits: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATE_LIMIT_ENV, "1/60")  # the anonymous limit: batches are not counted by it
    pubs = seeded.publication_ids

    def batch(name: str, poisoned: bool = False) -> list[NewEvent]:
        events = [NewEvent(pubs[i], "like", f"crm:{name}") for i in range(3)]
        if poisoned:
            events.append(NewEvent(pubs[0], "click", f"crm:{name}", idempotency_key=poisoned_key))
        return events

    async def all_at_once(batches: list[list[NewEvent]]) -> list[Any]:
        return await asyncio.gather(
            *(record_batch_grouped(seeded.catalog, events) for events in batches), return_exceptions=True
        )

    healthy = asyncio.run(all_at_once([batch("a"), batch("b"), batch("c")]))
    assert len(commits) == 1  # three requests, one transaction
    assert [[type(o).__name__ for o in outcomes] for outcomes in healthy] == [["FeedbackEventInfo"] * 3] * 3
    assert _stored(seeded.catalog) == 9
    commits.clear()
    mixed = asyncio.run(all_at_once([batch("d"), batch("e", poisoned=True), batch("f")]))
    assert isinstance(mixed[1], sqlalchemy.exc.DBAPIError)  # the whole batch refused ...
    assert all(isinstance(o, FeedbackEventInfo) for o in [*mixed[0], *mixed[2]])
    assert len(commits) == 2  # ... after the group failed: d and f went alone
    assert _stored(seeded.catalog) == 15  # none of e's three likes


def test_when_the_writer_cannot_be_reached_each_request_gets_the_error_and_the_next_group_works(
    seeded: SeededCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genloop.server import group_commit

    async def refused(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    pubs = seeded.publication_ids
    with monkeypatch.context() as patched:
        patched.setattr(group_commit, "run_write", refused)
        answers = _at_once(seeded.catalog, [NewEvent(pubs[i], "like", f"viewer_{i}") for i in range(3)])
    assert all(isinstance(a, RuntimeError) for a in answers)
    assert _stored(seeded.catalog) == 0
    assert isinstance(_at_once(seeded.catalog, [NewEvent(pubs[0], "like", "viewer_0")])[0], FeedbackEventInfo)


class _HeldWriter:
    """Holds the writer thread in its first statement until `go` is set (`reached` once it waits),
    and counts the connections checked out of the catalog's pool."""

    def __init__(self, catalog: Catalog) -> None:
        self.engine = catalog.engine
        self.reached, self.go = threading.Event(), threading.Event()
        self.checkouts = 0
        event.listen(self.engine, "before_cursor_execute", self._hold)
        event.listen(self.engine, "checkout", self._checked_out)

    def _hold(self, *_args: Any) -> None:
        if not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30), "the test never let the writer go"

    def _checked_out(self, *_args: Any) -> None:
        self.checkouts += 1

    def remove(self) -> None:
        self.go.set()
        event.remove(self.engine, "before_cursor_execute", self._hold)
        event.remove(self.engine, "checkout", self._checked_out)


@pytest.fixture
def held_writer(seeded: SeededCatalog) -> Iterator[_HeldWriter]:
    writer = _HeldWriter(seeded.catalog)
    yield writer
    writer.remove()


def test_the_groups_of_a_burst_share_one_connection_which_goes_back_to_the_pool(
    seeded: SeededCatalog, held_writer: _HeldWriter, commits: list[int]
) -> None:
    pubs = seeded.publication_ids

    async def two_groups() -> list[FeedbackEventInfo]:
        first = [
            asyncio.ensure_future(record_grouped(seeded.catalog, NewEvent(pubs[i], "like", f"a_{i}")))
            for i in range(3)
        ]
        await asyncio.to_thread(held_writer.reached.wait, 30)  # the first group is in the writer
        second = [
            asyncio.ensure_future(record_grouped(seeded.catalog, NewEvent(pubs[i], "like", f"b_{i}")))
            for i in range(3)
        ]
        await asyncio.sleep(0)  # the second group waits behind it
        held_writer.go.set()
        return await asyncio.gather(*first, *second)

    answers = asyncio.run(two_groups())
    assert len(commits) == 2 and len({a.id for a in answers}) == 6  # two groups, two transactions ...
    assert held_writer.checkouts == 1  # ... on one connection (one pre-ping on PostgreSQL)
    assert seeded.catalog.engine.pool.checkedout() == 0  # returned when nothing waited


def test_a_group_that_fails_returns_its_connection_and_the_next_group_gets_a_sound_one(
    seeded: SeededCatalog, poisoned_key: str
) -> None:
    pubs = seeded.publication_ids
    poisoned = NewEvent(pubs[0], "click", "v", idempotency_key=poisoned_key)
    answers = _at_once(seeded.catalog, [NewEvent(pubs[0], "like", "viewer_0"), poisoned])
    assert isinstance(answers[0], FeedbackEventInfo) and isinstance(answers[1], sqlalchemy.exc.DBAPIError)
    assert seeded.catalog.engine.pool.checkedout() == 0
    assert isinstance(_at_once(seeded.catalog, [NewEvent(pubs[1], "like", "viewer_1")])[0], FeedbackEventInfo)
    assert _stored(seeded.catalog) == 2


def test_a_loop_that_shuts_down_while_a_group_is_stored_gets_the_connection_back_to_the_pool(
    seeded: SeededCatalog, held_writer: _HeldWriter
) -> None:
    pubs = seeded.publication_ids

    async def leave_while_storing() -> None:
        waiting = asyncio.ensure_future(record_grouped(seeded.catalog, NewEvent(pubs[0], "like", "viewer_0")))
        await asyncio.to_thread(held_writer.reached.wait, 30)
        assert not waiting.done()
        # returning ends asyncio.run: the waiting request and the storing task are cancelled

    asyncio.run(leave_while_storing())
    assert seeded.catalog.engine.pool.checkedout() == 1  # the writer still stores on it
    held_writer.go.set()
    deadline = time.monotonic() + 30
    while seeded.catalog.engine.pool.checkedout() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seeded.catalog.engine.pool.checkedout() == 0  # returned by the writer once done
    assert _stored(seeded.catalog) == 1  # the group was stored whole; only the answer was dropped

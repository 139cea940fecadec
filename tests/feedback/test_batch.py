"""record_feedback_batch gives, event by event, what record_feedback gives one event at a time.

Both run on one real catalog (SQLite and PostgreSQL) with the same random events, under
different viewer and key prefixes, so each sees its own history: stored/replayed/refused,
which earlier event a replay names, the rows stored and "latest reaction wins" all agree.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.errors import GenloopError
from genloop.feedback.analytics import counts_for_publications
from genloop.feedback.batch import NewEvent, record_feedback_batch
from genloop.feedback.events import FeedbackEventInfo, feedback_transaction, record_feedback

PUBLICATIONS = ["p-a", "p-b", "p-missing"]
KINDS = ["impression", "click", "like", "dislike", "rating", "comment", "flag"]


def random_events(rng: random.Random, count: int, prefix: str) -> list[NewEvent]:
    """Few viewers, publications and keys, so repeats, changes of mind and key reuse are common."""
    events = []
    for _ in range(count):
        kind = rng.choice(KINDS)
        key_number = rng.randrange(12)
        events.append(
            NewEvent(
                publication_id=rng.choice(PUBLICATIONS),
                kind=kind,
                viewer_id=f"{prefix}viewer-{rng.randrange(3)}",
                idempotency_key=f"{prefix}key-{key_number:04d}" if rng.random() < 0.4 else None,
                value=float(rng.randint(0, 5)) if kind == "rating" else None,  # 0 is refused
                text="text" if kind == "comment" else None,
                meta={"来源": "广告", "n": rng.randrange(3)} if rng.random() < 0.3 else None,
            )
        )
    return events


def shape(results: list[FeedbackEventInfo | GenloopError]) -> list[tuple[str, object]]:
    """Each result as (outcome, the index of the first result that had its id): comparable across runs."""
    first_index: dict[int, int] = {}
    shaped: list[tuple[str, object]] = []
    for index, result in enumerate(results):
        if isinstance(result, GenloopError):
            shaped.append(("error", type(result).__name__))
            continue
        origin = first_index.setdefault(result.id, index)
        outcome = "replayed" if result.replayed else "stored"
        shaped.append((outcome, (origin, result.kind, result.value, result.supersedes)))
    return shaped


def one_at_a_time(catalog: Catalog, events: list[NewEvent]) -> list[FeedbackEventInfo | GenloopError]:
    results: list[FeedbackEventInfo | GenloopError] = []
    for event in events:
        try:
            results.append(record_feedback(catalog, **vars(event)))
        except GenloopError as error:
            results.append(error)
    return results


def stored_rows(catalog: Catalog, prefix: str) -> list[tuple[object, ...]]:
    """The rows of viewers starting with `prefix`, in id order; meta also as the stored JSON text
    (the batch sends it to PostgreSQL as text, one-at-a-time as a JSON parameter)."""
    with catalog.session() as session:
        rows = session.execute(
            select(FeedbackEvent, sa.cast(FeedbackEvent.meta, sa.Text).label("meta_text"))
            .where(FeedbackEvent.viewer_id.startswith(prefix))
            .order_by(FeedbackEvent.id)
        ).all()
    return [
        (
            r.publication_id,
            r.kind,
            r.viewer_id.removeprefix(prefix),
            r.value,
            r.text,
            r.idempotency_key is None,
            r.meta,
            meta_text,
        )
        for r, meta_text in rows
    ]


def test_a_batch_decides_every_event_as_one_at_a_time_would(chain: Catalog) -> None:
    for seed in range(3):
        rng = random.Random(seed)
        events = random_events(rng, 120, "x-")
        single = [NewEvent(**{**vars(e), **_prefixed(e, f"s{seed}-")}) for e in events]
        batched = [NewEvent(**{**vars(e), **_prefixed(e, f"b{seed}-")}) for e in events]
        expected = shape(one_at_a_time(chain, single))
        with feedback_transaction(chain) as connection:
            got = shape(record_feedback_batch(connection, batched))
        assert got == expected, seed
        assert stored_rows(chain, f"b{seed}-") == stored_rows(chain, f"s{seed}-")
        assert {outcome for outcome, _ in got} == {"stored", "replayed", "error"}


def test_latest_reaction_in_a_batch_wins(chain: Catalog) -> None:
    """A like then a dislike by one viewer in one batch: the dislike is stored after the like, and counts."""
    events = [
        NewEvent(publication_id="p-c", kind="like", viewer_id="v1", idempotency_key="batch-like-1"),
        NewEvent(publication_id="p-c", kind="dislike", viewer_id="v1", idempotency_key="batch-dislike-1"),
        NewEvent(publication_id="p-c", kind="like", viewer_id="v2"),
        NewEvent(publication_id="p-c", kind="like", viewer_id="v2"),
    ]
    with feedback_transaction(chain) as connection:
        results = record_feedback_batch(connection, events)
    assert [isinstance(r, FeedbackEventInfo) and r.replayed for r in results] == [False, False, False, True]
    assert counts_for_publications(chain, ["p-c"])["p-c"] == (1, 1)


def _prefixed(event: NewEvent, prefix: str) -> dict[str, str | None]:
    viewer = event.viewer_id.removeprefix("x-")
    key = event.idempotency_key.removeprefix("x-") if event.idempotency_key else None
    return {"viewer_id": f"{prefix}{viewer}", "idempotency_key": f"{prefix}{key}" if key else None}


def test_a_batch_reads_its_viewers_latest_events_through_the_viewer_index_on_sqlite(tmp_path: Path) -> None:
    """SQLite keeps no statistics: with more viewers than items in a batch (50 viewers, 20
    items), it chose the publication index and read every stored event of those items, a
    cost that grew with the table (23 ms a batch at 30,000 events). The plan must start from
    the viewers, through (viewer_id, publication_id)."""
    from genloop.catalog import open_catalog
    from genloop.feedback.batch import _STATEMENTS

    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    parameters = {
        "slot_viewers": [f"viewer-{i:03d}" for i in range(50)],
        "slot_publications": [f"item-{i:03d}" for i in range(20)],
        "publications": [f"item-{i:03d}" for i in range(20)],
        "keys": [],
        "recent_viewers": [],
        "since": datetime.now(UTC),
    }
    executed: list[tuple[str, Any]] = []
    with catalog.engine.connect() as connection:
        sa.event.listen(connection, "before_cursor_execute", lambda *args: executed.append(args[2:4]))
        connection.execute(_STATEMENTS["sqlite"].view, parameters).all()
        statement, values = executed[0]
        plan = " | ".join(
            row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", values)
        )
    assert "ix_feedback_events_viewer_publication" in plan, plan
    assert "ix_feedback_events_publication_id" not in plan, plan

"""Like-rate per model version and vote counts per publication, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, Publication
from genloop.errors import GenloopError
from genloop.feedback.analytics import (
    StatsFilter,
    counts_for_publications,
    feedback_stats,
    like_rate_by_model_version,
    wilson_interval,
)
from genloop.feedback.events import record_feedback

VOTES = [("p-a", "like"), ("p-a", "like"), ("p-a", "dislike"), ("p-b", "like"), ("p-c", "dislike")]


def cast_votes(catalog: Catalog) -> None:
    for number, (publication_id, kind) in enumerate(VOTES):
        record_feedback(catalog, publication_id=publication_id, kind=kind, viewer_id=f"viewer-{number}")


def test_like_rate_per_model_version(chain: Catalog) -> None:
    cast_votes(chain)
    with chain.session() as session:  # kinds other than like/dislike do not count
        session.add(FeedbackEvent(publication_id="p-b", kind="impression", viewer_id="viewer-x"))
    rates = {rate.model_version_id: rate for rate in like_rate_by_model_version(chain)}
    assert list(rates) == ["digits-v1", "digits-v2", "digits-v3"]
    v1, v2, v3 = rates["digits-v1"], rates["digits-v2"], rates["digits-v3"]
    assert (v1.publications, v1.likes, v1.dislikes) == (2, 3, 1)
    assert v1.like_rate == pytest.approx(0.75)
    assert (v2.publications, v2.likes, v2.dislikes) == (2, 0, 1)
    assert v2.like_rate == 0.0
    assert (v3.publications, v3.likes, v3.dislikes) == (0, 0, 0)
    assert v3.like_rate is None


def test_like_rate_is_one_query(chain: Catalog) -> None:
    """Aggregated in the database (GROUP BY), not a Python loop over events."""
    cast_votes(chain)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa_event.listen(chain.engine, "before_cursor_execute", count)
    try:
        like_rate_by_model_version(chain)
    finally:
        sa_event.remove(chain.engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1
    assert "GROUP BY" in selects[0].upper()


def test_counts_for_publications(chain: Catalog) -> None:
    cast_votes(chain)
    counts = counts_for_publications(chain, ["p-a", "p-b", "p-c", "p-d", "p-unknown"])
    assert counts == {"p-a": (2, 1), "p-b": (1, 0), "p-c": (0, 1), "p-d": (0, 0), "p-unknown": (0, 0)}
    assert counts_for_publications(chain, []) == {}


def test_counts_for_many_ids_are_chunked(chain: Catalog) -> None:
    cast_votes(chain)
    ids = [f"missing-{n}" for n in range(1200)] + ["p-a"]
    counts = counts_for_publications(chain, ids)
    assert len(counts) == 1201
    assert counts["p-a"] == (2, 1)


# -- Wilson intervals, groupings, the planted A/B stream -------------------------------------------


def test_wilson_interval_matches_the_hand_computed_value() -> None:
    # p = 0.8, n = 10, z = 1.96: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    low, high = wilson_interval(8, 10) or (0.0, 0.0)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 0) is None
    zero_low, zero_high = wilson_interval(0, 5) or (1.0, 1.0)
    assert zero_low == 0.0 and 0.0 < zero_high < 0.5


DAY_1 = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
DAY_2 = DAY_1 + timedelta(days=1)


def plant(catalog: Catalog) -> None:
    """Arm A (p-a, p-c): 8 likes, 2 dislikes, 20 impressions, 5 clicks.

    Arm B (p-b, p-d): 3 likes, 7 dislikes, ratings 5 and 3.
    """
    with catalog.session() as session:
        for publication_id, arm in {"p-a": "A", "p-b": "B", "p-c": "A", "p-d": "B"}.items():
            publication = session.get(Publication, publication_id)
            assert publication is not None
            publication.arm = arm
        item = session.get(ContentItem, "item-p-c")
        assert item is not None
        item.condition = {"prompt": "秋季新品"}
    stream = (
        [("p-a", "like", DAY_1)] * 5
        + [("p-a", "dislike", DAY_1)]
        + [("p-c", "like", DAY_2)] * 3
        + [("p-c", "dislike", DAY_2)]
        + [("p-b", "like", DAY_1)] * 3
        + [("p-d", "dislike", DAY_2)] * 7
        + [("p-a", "impression", DAY_1)] * 20
        + [("p-a", "click", DAY_1)] * 5
    )
    for number, (publication_id, kind, at) in enumerate(stream):
        record_feedback(catalog, publication_id=publication_id, kind=kind, viewer_id=f"v{number}", at=at)
    for number, value in enumerate((5, 3)):
        record_feedback(
            catalog, publication_id="p-b", kind="rating", value=value, viewer_id=f"r{number}", at=DAY_1
        )
    # A change of mind: viewer v0 (a like on p-a) now dislikes; A becomes 7 likes, 3 dislikes ...
    record_feedback(catalog, publication_id="p-a", kind="dislike", viewer_id="v0", at=DAY_1)
    # ... and back: 8 likes, 2 dislikes again, with three of v0's events stored.
    record_feedback(catalog, publication_id="p-a", kind="like", viewer_id="v0", at=DAY_1)


def test_per_arm_numbers_on_a_planted_stream(chain: Catalog) -> None:
    plant(chain)
    arms = {row.group["arm"]: row for row in feedback_stats(chain, by=["arm"])}
    a, b = arms["A"], arms["B"]
    assert (a.likes, a.dislikes, a.impressions, a.clicks) == (8, 2, 20, 5)
    assert a.like_rate == pytest.approx(0.8)
    assert a.like_rate_interval == pytest.approx((0.490, 0.943), abs=5e-4)
    assert a.ctr == pytest.approx(0.25)
    assert (b.likes, b.dislikes, b.ratings) == (3, 7, 2)
    assert b.like_rate == pytest.approx(0.3)
    assert b.mean_rating == pytest.approx(4.0)
    assert b.ctr is None and b.ctr_interval is None


def test_per_model_version_per_day_condition_and_channel(chain: Catalog) -> None:
    plant(chain)
    series = {
        (row.group["model_version"], row.group["day"]): (row.likes, row.dislikes)
        for row in feedback_stats(chain, by=["model_version", "day"])
    }
    assert series == {
        ("digits-v1", "2025-11-03"): (8, 1),
        ("digits-v2", "2025-11-04"): (3, 8),
    }
    conditions = {row.group["condition"]: row.votes for row in feedback_stats(chain, by=["condition"])}
    assert conditions == {"1": 5 + 1 + 3 + 7, "秋季新品": 4}
    channels = feedback_stats(chain, by=["channel"])
    assert [(row.group["channel"], row.votes) for row in channels] == [("gallery", 20)]
    only_day_2 = feedback_stats(chain, by=["arm"], where=StatsFilter(since=DAY_2 - timedelta(hours=1)))
    assert {row.group["arm"]: row.votes for row in only_day_2} == {"A": 4, "B": 7}
    only_b = feedback_stats(chain, by=["model_version"], where=StatsFilter(arm="B", condition="1"))
    assert {row.group["model_version"]: (row.likes, row.dislikes) for row in only_b} == {
        "digits-v1": (3, 0),
        "digits-v2": (0, 7),
    }


HOSTILE = ["' OR '1'='1", "x'; DROP TABLE feedback_events; --", "%", "1) OR (1=1", "\\'"]


def test_filters_are_parameters_not_sql(chain: Catalog) -> None:
    plant(chain)
    for hostile in HOSTILE:
        for field in ("model_version_id", "model_name", "channel", "arm", "condition"):
            assert feedback_stats(chain, by=["arm"], where=StatsFilter(**{field: hostile})) == []
    assert sum(row.votes for row in feedback_stats(chain, by=["arm"])) == 20  # the table is still there


def test_unknown_grouping_is_refused(chain: Catalog) -> None:
    with pytest.raises(GenloopError, match="cannot group feedback by viewer_id"):
        feedback_stats(chain, by=["viewer_id"])


def test_feedback_stats_is_one_grouped_query(chain: Catalog) -> None:
    plant(chain)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa_event.listen(chain.engine, "before_cursor_execute", count)
    try:
        feedback_stats(chain, by=["model_version", "day", "condition", "channel", "arm"])
    finally:
        sa_event.remove(chain.engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1
    assert "GROUP BY" in selects[0].upper()

"""Like-rate per model version and vote counts per publication, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event as sa_event

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.feedback.analytics import counts_for_publications, like_rate_by_model_version
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

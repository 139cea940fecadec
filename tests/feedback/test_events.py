"""record_feedback on a real catalog (SQLite and PostgreSQL): validation, idempotency, the race."""

from __future__ import annotations

import math
import threading

import pytest
from sqlalchemy import func, select

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback import events
from genloop.feedback.events import FEEDBACK_KINDS, IdempotencyConflictError, record_feedback


def rows(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0


def test_records_a_like(chain: Catalog) -> None:
    event = record_feedback(chain, publication_id="p-a", kind="like", viewer_id="viewer-1")
    assert event.kind == "like"
    assert event.publication_id == "p-a"
    assert event.replayed is False
    assert event.created_at.tzinfo is not None
    with chain.session() as session:
        stored = session.get(FeedbackEvent, event.id)
        assert stored is not None
        assert (stored.publication_id, stored.kind, stored.viewer_id) == ("p-a", "like", "viewer-1")


def test_unknown_kind_lists_the_allowed_kinds(chain: Catalog) -> None:
    with pytest.raises(GenloopError) as raised:
        record_feedback(chain, publication_id="p-a", kind="love", viewer_id="viewer-1")
    assert "love" in raised.value.message
    assert raised.value.hint == "allowed kinds: like, dislike"
    assert FEEDBACK_KINDS == ("like", "dislike")
    assert rows(chain) == 0


def test_unknown_publication_is_not_found(chain: Catalog) -> None:
    with pytest.raises(NotFoundError, match="p-zzz"):
        record_feedback(chain, publication_id="p-zzz", kind="like", viewer_id="viewer-1")
    assert rows(chain) == 0


@pytest.mark.parametrize(
    ("viewer_id", "key", "value"),
    [("", None, None), ("v" * 65, None, None), ("viewer", "", None), ("viewer", None, math.nan)],
)
def test_bad_arguments_are_refused(
    chain: Catalog, viewer_id: str, key: str | None, value: float | None
) -> None:
    with pytest.raises(GenloopError):
        record_feedback(
            chain, publication_id="p-a", kind="like", viewer_id=viewer_id, idempotency_key=key, value=value
        )
    assert rows(chain) == 0


def test_repeated_idempotency_key_returns_the_stored_event(chain: Catalog) -> None:
    first = record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1", idempotency_key="key-1")
    again = record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1", idempotency_key="key-1")
    assert again.id == first.id
    assert again.replayed is True
    assert rows(chain) == 1


def test_reused_key_for_another_event_is_a_conflict(chain: Catalog) -> None:
    record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1", idempotency_key="key-1")
    with pytest.raises(IdempotencyConflictError):
        record_feedback(chain, publication_id="p-a", kind="dislike", viewer_id="v1", idempotency_key="key-1")
    with pytest.raises(IdempotencyConflictError):
        record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v2", idempotency_key="key-1")
    assert rows(chain) == 1


def test_race_on_the_unique_key_returns_the_winner(chain: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another request inserts the key after our lookup: the unique constraint fires, we read its row."""
    winner = record_feedback(chain, publication_id="p-b", kind="like", viewer_id="v1", idempotency_key="race")
    real_lookup = events._find_by_key
    calls = []

    def lookup_missing_once(session, key):  # type: ignore[no-untyped-def]
        calls.append(key)
        return None if len(calls) == 1 else real_lookup(session, key)

    monkeypatch.setattr(events, "_find_by_key", lookup_missing_once)
    loser = record_feedback(chain, publication_id="p-b", kind="like", viewer_id="v1", idempotency_key="race")
    assert len(calls) == 2  # the first lookup missed, the insert failed, the second found the winner
    assert loser.id == winner.id
    assert loser.replayed is True
    assert rows(chain) == 1


def test_concurrent_requests_with_one_key_store_one_event(chain: Catalog) -> None:
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def send() -> None:
        try:
            start.wait()
            event = record_feedback(
                chain, publication_id="p-c", kind="dislike", viewer_id="v9", idempotency_key="same-key"
            )
            results.append(event.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1
    assert rows(chain) == 1

"""record_feedback on a real catalog (SQLite and PostgreSQL): validation, idempotency, the race."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback import events
from genloop.feedback.analytics import counts_for_publications
from genloop.feedback.dedup import REPEAT_WINDOW
from genloop.feedback.events import FEEDBACK_KINDS, IdempotencyConflictError, record_feedback
from genloop.feedback.kinds import FeedbackValidationError, validate_event


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
    assert raised.value.hint == "allowed kinds: impression, click, like, dislike, rating, edit, comment, flag"
    assert FEEDBACK_KINDS == ("impression", "click", "like", "dislike", "rating", "edit", "comment", "flag")
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


def _lookup_missing_the_key_once(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Make the first lookup miss the stored key, as if another request stored it just after."""
    real_lookup = events._lookup
    calls: list[str | None] = []

    def lookup(connection, **keys):  # type: ignore[no-untyped-def]
        found = real_lookup(connection, **keys)
        calls.append(keys["idempotency_key"])
        return {**found, "key_id": None} if len(calls) == 1 and found is not None else found

    monkeypatch.setattr(events, "_lookup", lookup)
    return calls


def test_race_on_the_unique_key_returns_the_winner(chain: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another request inserts the key after our lookup: the insert does nothing, we read its row.

    A comment, because comments are never de-duplicated: only the key can catch the repeat.
    """
    winner = record_feedback(
        chain, publication_id="p-b", kind="comment", text="hi", viewer_id="v1", idempotency_key="race"
    )
    calls = _lookup_missing_the_key_once(monkeypatch)
    loser = record_feedback(
        chain, publication_id="p-b", kind="comment", text="hi", viewer_id="v1", idempotency_key="race"
    )
    assert calls == ["race"]  # the lookup missed, the insert did nothing, the winner was read
    assert loser.id == winner.id
    assert loser.replayed is True
    assert loser.text == "hi"
    assert rows(chain) == 1


def test_race_lost_to_another_event_with_the_key_is_a_conflict(
    chain: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_feedback(
        chain, publication_id="p-b", kind="comment", text="hi", viewer_id="v1", idempotency_key="race"
    )
    _lookup_missing_the_key_once(monkeypatch)
    with pytest.raises(IdempotencyConflictError):
        record_feedback(
            chain, publication_id="p-b", kind="flag", text="no", viewer_id="v1", idempotency_key="race"
        )
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


# -- every kind, validation, de-duplication --------------------------------------------------------

EVERY_KIND = [
    ("impression", None, None),
    ("click", None, None),
    ("like", None, None),
    ("dislike", None, None),
    ("rating", 4.0, None),
    ("edit", None, "更正后的文本 / the corrected text"),
    ("comment", None, "nice"),
    ("flag", None, "looks like a real person"),
]


def test_every_kind_is_stored_with_its_value_and_text(chain: Catalog) -> None:
    for kind, value, text in EVERY_KIND:
        event = record_feedback(
            chain, publication_id="p-a", kind=kind, viewer_id="viewer-1", value=value, text=text
        )
        assert event.replayed is False
        with chain.session() as session:
            stored = session.get(FeedbackEvent, event.id)
            assert stored is not None
            assert (stored.kind, stored.value, stored.text) == (kind, value, text)
    assert rows(chain) == len(FEEDBACK_KINDS)


@pytest.mark.parametrize(
    ("kind", "viewer_id", "value", "text", "message"),
    [
        ("rating", "v1", 0.0, None, "whole number from 1 to 5"),
        ("rating", "v1", 6.0, None, "whole number from 1 to 5"),
        ("rating", "v1", 3.5, None, "whole number from 1 to 5"),
        ("rating", "v1", None, None, "whole number from 1 to 5"),
        ("like", "v1", 1.0, None, "takes no value"),
        ("edit", "v1", None, None, "needs .text."),
        ("edit", "v1", None, "   ", "needs .text."),
        ("comment", "v1", None, None, "needs .text."),
        ("like", "v1", None, "words", "takes no text"),
        ("comment", "v1", None, "x" * (8 * 1024 + 1), "limit is 8192"),
        ("comment", "v1", None, "中" * 3000, "limit is 8192"),  # 9000 bytes of UTF-8
        ("comment", "v1", None, "a\x00b", "NUL"),
        ("comment", "v1", None, "half a pair \ud800", "unpaired surrogate"),
        ("like", "has space", None, None, "viewer id"),
        ("like", "v" * 65, None, None, "viewer id"),
        ("like", "'; DROP TABLE feedback_events; --", None, None, "viewer id"),
    ],
)
def test_invalid_events_say_what_is_wrong(
    kind: str, viewer_id: str, value: float | None, text: str | None, message: str
) -> None:
    with pytest.raises(FeedbackValidationError, match=message):
        validate_event(kind=kind, viewer_id=viewer_id, value=value, text=text)


def test_an_invalid_event_stores_nothing(chain: Catalog) -> None:
    with pytest.raises(FeedbackValidationError, match="whole number"):
        record_feedback(chain, publication_id="p-a", kind="rating", viewer_id="v1", value=9)
    assert rows(chain) == 0


NOON = datetime(2025, 11, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["impression", "click"])
def test_repeated_impressions_and_clicks_within_the_window_are_replayed(chain: Catalog, kind: str) -> None:
    first = record_feedback(chain, publication_id="p-a", kind=kind, viewer_id="v1", at=NOON)
    again = record_feedback(
        chain, publication_id="p-a", kind=kind, viewer_id="v1", at=NOON + timedelta(minutes=29)
    )
    assert (again.id, again.replayed) == (first.id, True)
    other_viewer = record_feedback(chain, publication_id="p-a", kind=kind, viewer_id="v2", at=NOON)
    other_publication = record_feedback(chain, publication_id="p-b", kind=kind, viewer_id="v1", at=NOON)
    later = record_feedback(chain, publication_id="p-a", kind=kind, viewer_id="v1", at=NOON + REPEAT_WINDOW)
    assert not (other_viewer.replayed or other_publication.replayed or later.replayed)
    assert rows(chain) == 4


def test_latest_reaction_wins(chain: Catalog) -> None:
    like = record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1")
    assert record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1").id == like.id
    dislike = record_feedback(chain, publication_id="p-a", kind="dislike", viewer_id="v1")
    assert dislike.replayed is False  # a change of mind is stored ...
    assert counts_for_publications(chain, ["p-a"])["p-a"] == (0, 1)  # ... and only the latest counts
    assert record_feedback(chain, publication_id="p-a", kind="like", viewer_id="v1").replayed is False
    assert counts_for_publications(chain, ["p-a"])["p-a"] == (1, 0)
    assert rows(chain) == 3


def test_latest_rating_wins_and_text_kinds_are_never_merged(chain: Catalog) -> None:
    four = record_feedback(chain, publication_id="p-a", kind="rating", viewer_id="v1", value=4)
    assert record_feedback(chain, publication_id="p-a", kind="rating", viewer_id="v1", value=4).id == four.id
    assert (
        record_feedback(chain, publication_id="p-a", kind="rating", viewer_id="v1", value=2).replayed is False
    )
    for _ in range(2):
        assert (
            record_feedback(chain, publication_id="p-a", kind="comment", viewer_id="v1", text="same").replayed
            is False
        )
    assert rows(chain) == 4


def test_concurrent_repeats_without_a_key_store_one_event(chain: Catalog) -> None:
    """Two workers that both saw no earlier impression derive the same key: one row."""
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def send() -> None:
        try:
            start.wait()
            results.append(record_feedback(chain, publication_id="p-d", kind="impression", viewer_id="v7").id)
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

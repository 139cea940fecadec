"""Feedback events: one reaction of one pseudonymous viewer to one publication.

Events are append-only rows in the catalog. What an event may be (kinds, value, text)
is checked in `kinds.py`; repeats of the same reaction are folded in `dedup.py`.

A client that retries a request sends the same `idempotency_key`, and gets the event
it already created instead of a second row: the key is unique in the table, so two
concurrent requests with one key cannot both insert (the loser of the race reads the
winner's row). Events without a client key get a derived key from `dedup.py`, so the
same race is settled the same way for repeated impressions, clicks and reactions.

One event is one transaction of two statements, both built once at import (compiled
once per process, then only their parameters change):

    SELECT publication ⟕ event with the client's key ⟕ viewer's latest event of the slot
    INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING id

A lost race (the INSERT returns no row: another request stored the key in between) adds
a third, reading the winner. It speaks SQLAlchemy Core, not the ORM, as `batch.py` does,
which stores the API's events (the gallery's single events in groups, server/group_commit.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Insert,
    RowMapping,
    Select,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent, Publication
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.dedup import SLOTS, decide
from genloop.feedback.kinds import (
    FEEDBACK_KINDS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_VIEWER_ID_CHARS,
    validate_event,
)

__all__ = [
    "FEEDBACK_KINDS",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "MAX_VIEWER_ID_CHARS",
    "FeedbackEventInfo",
    "IdempotencyConflictError",
    "as_utc",
    "feedback_transaction",
    "record_feedback",
    "record_feedback_in",
]


class IdempotencyConflictError(GenloopError):
    """An idempotency key was reused for a different event (other publication, kind or viewer)."""


@dataclass(frozen=True)
class FeedbackEventInfo:
    id: int
    publication_id: str
    kind: str
    value: float | None
    viewer_id: str
    idempotency_key: str | None
    created_at: datetime
    replayed: bool
    """True when this repeats a stored event (same key, or a de-duplicated repeat): that event."""
    text: str | None = None
    meta: dict[str, Any] | None = None
    supersedes: str | None = None
    """A newly stored like/dislike/rating: the kind of the viewer's earlier event it replaces
    (a dislike after a like: "like"), as "latest reaction wins" counts it; else None."""


EVENTS = cast(Table, FeedbackEvent.__table__)
PUBLICATIONS = cast(Table, Publication.__table__)
COLUMNS = (
    "id",
    "publication_id",
    "kind",
    "value",
    "viewer_id",
    "idempotency_key",
    "created_at",
    "text",
    "meta",
)


def _lookup_statement(slot: tuple[str, ...] | None) -> Select[Any]:
    """One row if the publication exists: plus the event holding the key, and the slot's latest event.

    The slot's latest event is max(id) of the viewer's events of the slot's kinds on the
    publication (index ix_feedback_events_viewer_time narrows it to the viewer's rows).
    """
    by_key = EVENTS.alias("by_key")
    columns = [PUBLICATIONS.c.id.label("publication_found")]
    columns += [by_key.c[name].label(f"key_{name}") for name in COLUMNS]
    joined = PUBLICATIONS.outerjoin(by_key, by_key.c.idempotency_key == bindparam("idempotency_key"))
    if slot is not None:
        older, previous = EVENTS.alias("older"), EVENTS.alias("previous")
        latest_in_slot = (
            select(func.max(older.c.id))
            .where(
                older.c.viewer_id == bindparam("viewer_id"),
                older.c.publication_id == bindparam("publication_id"),
                # the kinds inline (our constants): an IN of bound values is re-rendered per call
                older.c.kind.in_([literal_column(f"'{kind}'") for kind in slot]),
            )
            .scalar_subquery()
        )
        joined = joined.outerjoin(previous, previous.c.id == latest_in_slot)
        columns += [previous.c[name].label(f"previous_{name}") for name in COLUMNS]
    return select(*columns).select_from(joined).where(PUBLICATIONS.c.id == bindparam("publication_id"))


def _insert_statement(dialect: Any) -> Insert:
    return cast(
        Insert,
        dialect.insert(EVENTS)
        .on_conflict_do_nothing(index_elements=[EVENTS.c.idempotency_key])
        .returning(EVENTS.c.id),
    )


_LOOKUPS = {slot: _lookup_statement(slot) for slot in {None, *SLOTS.values()}}
INSERTS = {"sqlite": _insert_statement(sqlite), "postgresql": _insert_statement(postgresql)}


def _in_expanded_list(column: Any, name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


def _in_array(column: Any, name: str) -> ColumnElement[bool]:
    return column == any_(bindparam(name, type_=postgresql.ARRAY(String)))


AMONG = {"sqlite": _in_expanded_list, "postgresql": _in_array}
"""Per dialect, `column` among the strings of the list parameter `name`: an IN list expanded
per call on SQLite; one array parameter (`= ANY(…)`) on PostgreSQL, so the statement's text
is the same for every call and psycopg does not re-parse it."""
_BY_KEY = select(*(EVENTS.c[name] for name in COLUMNS)).where(
    EVENTS.c.idempotency_key == bindparam("idempotency_key")
)

_sqlite_writers: dict[str, AbstractContextManager[Any]] = {}
_sqlite_writers_guard = threading.Lock()


@contextmanager
def feedback_transaction(catalog: Catalog, connection: Connection | None = None) -> Iterator[Connection]:
    """One transaction to record feedback in (commit on success); one writer at a time on SQLite.

    On `connection` when given (the caller checked it out and keeps it), else on one from
    the pool for this transaction. A given connection in autocommit mode (the group commit's
    on PostgreSQL) gets no transaction here: `record_feedback_batch` opens one when it writes
    more than once, and the commit on exit ends it.

    SQLite admits one writer; the others wait in its busy handler, which sleeps 1, 2, 5,
    10 … 100 ms between tries, so under 16 concurrent requests those sleeps, not the work,
    made the latency. Queueing on a lock in this process instead hands the database to the
    next writer as soon as the previous one commits (writers in other processes still meet
    the busy handler). PostgreSQL locks per row: no lock here.
    """
    lock: AbstractContextManager[Any] = nullcontext()
    if catalog.engine.dialect.name == "sqlite":
        with _sqlite_writers_guard:
            lock = _sqlite_writers.setdefault(catalog.url, threading.RLock())
    with lock:
        if connection is None:
            with catalog.engine.begin() as pooled:
                yield pooled
        else:
            with connection.begin():
                yield connection


def record_feedback(
    catalog: Catalog,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    idempotency_key: str | None = None,
    value: float | None = None,
    text: str | None = None,
    meta: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> FeedbackEventInfo:
    """Store one feedback event, or return the stored one it repeats (`replayed=True`).

    `at` backdates the event (simulations, backfills); the default is now (UTC).
    """
    with feedback_transaction(catalog) as connection:
        return record_feedback_in(
            connection,
            publication_id=publication_id,
            kind=kind,
            viewer_id=viewer_id,
            idempotency_key=idempotency_key,
            value=value,
            text=text,
            meta=meta,
            at=at,
        )


def record_feedback_in(
    connection: Connection,
    *,
    publication_id: str,
    kind: str,
    viewer_id: str,
    idempotency_key: str | None = None,
    value: float | None = None,
    text: str | None = None,
    meta: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> FeedbackEventInfo:
    """`record_feedback` inside the caller's transaction (`feedback_transaction`), e.g. one per batch.

    Refusals (unknown publication, invalid event, key conflict) raise before anything is
    written, so the transaction stays usable for the caller's next event.
    """
    validate_event(
        kind=kind, viewer_id=viewer_id, idempotency_key=idempotency_key, value=value, text=text, meta=meta
    )
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    found = _lookup(
        connection,
        publication_id=publication_id,
        kind=kind,
        viewer_id=viewer_id,
        idempotency_key=idempotency_key,
    )
    if found is None:
        raise NotFoundError(
            f"publication {publication_id!r} is not in the catalog",
            hint="publication ids are listed by GET /api/v1/publications and `genloop publish`",
        )
    if found["key_id"] is not None:
        return _replay(found, "key_", publication_id=publication_id, kind=kind, viewer_id=viewer_id)
    previous = _Stored.of(found, "previous_") if found.get("previous_id") is not None else None
    decision = decide(
        previous, publication_id=publication_id, kind=kind, viewer_id=viewer_id, value=value, at=moment
    )
    if decision.repeats:
        return _info(found, "previous_", replayed=True)
    key = idempotency_key or decision.derived_key
    new_id = connection.execute(
        INSERTS[connection.dialect.name],
        {
            "publication_id": publication_id,
            "kind": kind,
            "value": value,
            "viewer_id": viewer_id,
            "idempotency_key": key,
            "created_at": moment,
            "text": text,
            "meta": meta,
        },
    ).scalar()
    if new_id is None:
        # Another request stored the same key between our lookup and our insert (ON
        # CONFLICT did nothing): read the winner, committed by now on both backends.
        winner = connection.execute(_BY_KEY, {"idempotency_key": key}).mappings().first()
        if winner is None:
            raise GenloopError(
                f"idempotency key {key!r} was taken and then vanished while storing the event",
                hint="retry the request with the same key",
            )
        return _replay(winner, "", publication_id=publication_id, kind=kind, viewer_id=viewer_id)
    return FeedbackEventInfo(
        id=int(new_id),
        publication_id=publication_id,
        kind=kind,
        value=value,
        viewer_id=viewer_id,
        idempotency_key=key,
        created_at=moment,
        replayed=False,
        text=text,
        meta=meta,
        supersedes=previous.kind if previous is not None else None,
    )


def _lookup(
    connection: Connection, *, publication_id: str, kind: str, viewer_id: str, idempotency_key: str | None
) -> RowMapping | None:
    """The lookup row (see `_lookup_statement`), None when the publication does not exist."""
    slot = SLOTS.get(kind)
    parameters = {"publication_id": publication_id, "idempotency_key": idempotency_key}
    if slot is not None:
        parameters["viewer_id"] = viewer_id
    return connection.execute(_LOOKUPS[slot], parameters).mappings().first()


@dataclass(frozen=True)
class _Stored:
    """The fields dedup.decide reads of a stored event."""

    id: int
    kind: str
    value: float | None
    created_at: datetime

    @classmethod
    def of(cls, row: RowMapping, prefix: str) -> _Stored:
        return cls(
            row[f"{prefix}id"], row[f"{prefix}kind"], row[f"{prefix}value"], row[f"{prefix}created_at"]
        )


def _replay(
    row: RowMapping, prefix: str, *, publication_id: str, kind: str, viewer_id: str
) -> FeedbackEventInfo:
    stored = (row[f"{prefix}publication_id"], row[f"{prefix}kind"], row[f"{prefix}viewer_id"])
    if stored != (publication_id, kind, viewer_id):
        raise IdempotencyConflictError(
            f"idempotency key {row[f'{prefix}idempotency_key']!r} was already used for another event",
            hint="use a fresh key (a random UUID) for every new event; reuse a key only to retry",
        )
    return _info(row, prefix, replayed=True)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the catalog stores UTC, so say so."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _info(row: RowMapping, prefix: str, *, replayed: bool) -> FeedbackEventInfo:
    """The event in `row`'s columns named `prefix` + column."""
    return FeedbackEventInfo(
        id=row[f"{prefix}id"],
        publication_id=row[f"{prefix}publication_id"],
        kind=row[f"{prefix}kind"],
        value=row[f"{prefix}value"],
        viewer_id=row[f"{prefix}viewer_id"],
        idempotency_key=row[f"{prefix}idempotency_key"],
        created_at=as_utc(row[f"{prefix}created_at"]),
        replayed=replayed,
        text=row[f"{prefix}text"],
        meta=row[f"{prefix}meta"],
    )

"""SQL pieces the feedback analytics share, written once for SQLite and PostgreSQL.

* `utc_day(created_at)`: the UTC calendar day as 'YYYY-MM-DD' text on both backends.
* `condition_key(condition)`: the class label or prompt of a content item's condition
  JSON ('' when unconditional), as text, so it can be grouped on (PostgreSQL cannot
  GROUP BY a `json` column, but it can group on text extracted from it).
* `current_events()`: the WHERE clause that keeps, per viewer and publication, only the
  latest like-or-dislike and the latest rating (the "latest reaction wins" rule of
  dedup.py), and every event of the other kinds.

Both functions compile to literal SQL with no bound parameters, so the same expression
in SELECT and GROUP BY is textually identical (PostgreSQL requires that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, case, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from genloop.catalog.models import FeedbackEvent

REACTION_KINDS = ("like", "dislike")
SLOTTED_KINDS = (*REACTION_KINDS, "rating")


class utc_day(FunctionElement[str]):
    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day)
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class condition_key(FunctionElement[str]):
    type = String()
    name = "condition_key"
    inherit_cache = True


@compiles(condition_key)
def _condition_key_sqlite(element: condition_key, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return (
        f"coalesce(CAST(json_extract({column}, '$.label') AS TEXT), "
        f"CAST(json_extract({column}, '$.prompt') AS TEXT), '')"
    )


@compiles(condition_key, "postgresql")
def _condition_key_postgresql(element: condition_key, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"coalesce(({column}) ->> 'label', ({column}) ->> 'prompt', '')"


def current_events(publication_ids: Sequence[str] | None = None) -> ColumnElement[bool]:
    """True for events that count: the latest reaction / rating per viewer+publication, all others.

    `publication_ids` narrows the inner scan when the caller only asks about those.
    """
    older = aliased(FeedbackEvent)  # an alias, so the subquery never correlates with the outer query
    slot = case((older.kind.in_(REACTION_KINDS), "reaction"), else_=older.kind)
    latest = (
        select(func.max(older.id))
        .where(older.kind.in_(SLOTTED_KINDS))
        .where(*([older.publication_id.in_(publication_ids)] if publication_ids is not None else []))
        .group_by(older.publication_id, older.viewer_id, slot)
    )
    return or_(FeedbackEvent.kind.not_in(SLOTTED_KINDS), FeedbackEvent.id.in_(latest))

"""Feedback rows for the ranker: (line, attributes, liked), from the catalog or from a file.

catalog   every stored ad-copy candidate (channel "adcopy") that was published and got
          reactions: liked when likes + clicks > dislikes, not liked when it was seen
          (impressions) or disliked without that; counted in SQL, one row per candidate
file      CSV/JSONL: text, liked (1/0, true/false, yes/no), and optional category, tone,
          audience, language — e.g. an export of an ad platform's per-creative results
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select

from genloop.apps.adcopy.ranker import ATTRIBUTE_KEYS, FeedbackRow
from genloop.apps.tables import read_rows
from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, Publication
from genloop.errors import DataError

CHANNEL = "adcopy"
TRUE = {"1", "true", "yes", "y", "liked", "like"}
FALSE = {"0", "false", "no", "n", "disliked", "dislike", ""}
EXAMPLE = '{"text": "Built for long days.", "liked": 1, "category": "shoes", "tone": "bold"}'


def _liked(value: Any, where: str) -> bool:
    text = str(value).strip().lower() if value is not None else ""
    if isinstance(value, bool):
        return value
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise DataError(f"{where}: field 'liked' is {value!r}", hint="use 1/0, true/false or yes/no")


def rows_from_file(path: Path) -> list[FeedbackRow]:
    rows = []
    for number, row in read_rows(path, what="feedback file", example=EXAMPLE):
        where = f"{path}:{number}"
        text = str(row.get("text") or "").strip()
        if not text:
            raise DataError(f"{where}: field 'text' is missing or empty", hint=f"e.g. {EXAMPLE}")
        if "liked" not in row:
            raise DataError(f"{where}: field 'liked' is missing", hint=f"e.g. {EXAMPLE}")
        attributes = {key: str(row.get(key) or "") for key in ATTRIBUTE_KEYS}
        rows.append(FeedbackRow(text, attributes, _liked(row["liked"], where)))
    return rows


def rows_from_catalog(catalog: Catalog) -> list[FeedbackRow]:
    """One row per published ad-copy candidate with reactions (see the module docstring)."""

    def count(*kinds: str) -> Any:
        return func.sum(case((FeedbackEvent.kind.in_(kinds), 1), else_=0))

    query = (
        select(ContentItem.condition, ContentItem.params, count("like", "click"), count("dislike"))
        .join(Publication, Publication.content_item_id == ContentItem.id)
        .join(FeedbackEvent, FeedbackEvent.publication_id == Publication.id)
        .where(ContentItem.channel == CHANNEL)
        .group_by(ContentItem.id, ContentItem.condition, ContentItem.params)
    )
    with catalog.session() as session:
        results = session.execute(query).all()
    rows = []
    for condition, params, positive, negative in results:
        line = (condition or {}).get("line")
        if not line:
            continue
        constraints = (params or {}).get("constraints") or {}
        attributes = {key: str(constraints.get(key) or "") for key in ATTRIBUTE_KEYS}
        rows.append(FeedbackRow(str(line), attributes, int(positive or 0) > int(negative or 0)))
    return rows

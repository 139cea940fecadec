"""Feedback rows for the ranker: (line, attributes, liked), from the catalog or from a file.

catalog   every stored ad-copy line (channel "adcopy") whose publications got reactions —
          published alone, or shown in a published creative (channel "adcopy-creatives",
          whose condition["shows"] names the line): line_reactions counts impressions,
          clicks, likes and dislikes per line in SQL, both sources summed into one row;
          liked when likes + clicks > dislikes, not liked when it was seen (impressions) or
          disliked without that. Events come from the gallery, the batch API, or an ad
          platform's CSV (`genloop feedback import`, creative = a creative's content id)
file      CSV/JSONL: text, liked (1/0, true/false, yes/no), and optional category, tone,
          audience, language — e.g. an export of an ad platform's per-creative results
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from genloop.apps.adcopy.ranker import ATTRIBUTE_KEYS, FeedbackRow
from genloop.apps.adcopy.shelf import CREATIVES_CHANNEL
from genloop.apps.tables import read_rows
from genloop.catalog import Catalog
from genloop.catalog.models import SHOWS_KEY, ContentItem, FeedbackEvent, Publication
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


@dataclass(frozen=True)
class LineReactions:
    """The reactions to one stored line, on its own publications and on creatives showing it."""

    content_item_id: str
    text: str
    attributes: dict[str, str]
    impressions: int
    clicks: int
    likes: int
    dislikes: int

    @property
    def liked(self) -> bool:
        return self.likes + self.clicks > self.dislikes

    def row(self) -> FeedbackRow:
        return FeedbackRow(self.text, dict(self.attributes), self.liked)


def line_reactions(catalog: Catalog) -> list[LineReactions]:
    """Every line with reactions, oldest first; counted in SQL (see the module docstring)."""
    shown = aliased(ContentItem)  # what was published: the line itself, or a creative showing it
    shows = shown.condition[SHOWS_KEY].as_string()  # a creative's line
    line_id = case((shown.channel == CHANNEL, shown.id), else_=shows).label("line_id")

    def count(kind: str) -> Any:
        return func.sum(case((FeedbackEvent.kind == kind, 1), else_=0)).label(kind)

    counts = (
        select(line_id, count("impression"), count("click"), count("like"), count("dislike"))
        .select_from(FeedbackEvent)
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .join(shown, shown.id == Publication.content_item_id)
        .where(shown.channel.in_((CHANNEL, CREATIVES_CHANNEL)))
        .group_by(line_id)
        .subquery()
    )
    query = (
        select(ContentItem.id, ContentItem.condition, ContentItem.params, *list(counts.c)[1:])
        .join(counts, counts.c.line_id == ContentItem.id)
        .where(ContentItem.channel == CHANNEL)
        .order_by(ContentItem.created_at, ContentItem.id)
    )
    with catalog.session() as session:
        results = session.execute(query).all()
    lines = []
    for content_id, condition, params, impressions, clicks, likes, dislikes in results:
        text = (condition or {}).get("line")
        if not text:
            continue
        constraints = (params or {}).get("constraints") or {}
        attributes = {key: str(constraints.get(key) or "") for key in ATTRIBUTE_KEYS}
        counted = (int(n or 0) for n in (impressions, clicks, likes, dislikes))
        lines.append(LineReactions(content_id, str(text), attributes, *counted))
    return lines


def rows_from_catalog(catalog: Catalog) -> list[FeedbackRow]:
    """One row per stored line with reactions, alone or in creatives (see the module docstring)."""
    return [line.row() for line in line_reactions(catalog)]

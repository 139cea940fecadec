"""Feedback out of the catalog: every event (JSONL, Parquet), and preference pairs for DPO.

Events, one JSON object per line, oldest first, read in keyset pages of `PAGE` rows so
memory does not grow with the catalog::

    {"id", "created_at", "publication_id", "content_item_id", "model_version_id", "channel",
     "arm", "kind", "value", "text", "viewer", "meta"}

`viewer` is a hash of the viewer id, not the id itself: the id is the viewer's cookie,
and whoever holds it could speak as that viewer.

Preference pairs use TRL's `prompt / chosen / rejected` shape (what `DPOTrainer` reads):

* votes: items of one modality with the SAME condition (class label or prompt) are
  ranked by their score, the mean of their counted votes with like = 1, dislike = 0,
  rating r = (r - 1) / 4 (each viewer's latest reaction and rating only). Every pair of
  items whose scores differ gives chosen = the better item, rejected = the worse, up to
  `max_pairs_per_condition` pairs per condition, best gaps first.
* edits: an `edit` of a text item gives chosen = the edited text, rejected = the
  original text, prompt = the item's condition.

`chosen` / `rejected` are the item's text for text items, and the file path (relative to
the workspace) for images and music.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import case, func, select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication
from genloop.feedback.analytics import StatsFilter
from genloop.feedback.events import as_utc
from genloop.feedback.sql import current_events
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

PAGE = 1000
MAX_ITEM_TEXT_BYTES = 64 * 1024
EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("publication_id", pa.string()),
        ("content_item_id", pa.string()),
        ("model_version_id", pa.string()),
        ("channel", pa.string()),
        ("arm", pa.string()),
        ("kind", pa.string()),
        ("value", pa.float64()),
        ("text", pa.string()),
        ("viewer", pa.string()),
        ("meta", pa.string()),
    ]
)


def viewer_pseudonym(viewer_id: str) -> str:
    return hashlib.sha256(f"genloop-viewer:{viewer_id}".encode()).hexdigest()[:16]


def iter_events(
    catalog: Catalog, *, where: StatsFilter | None = None, kinds: Sequence[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every event matching the filters, oldest first, as export dicts (see the module docstring)."""
    clauses = (where or StatsFilter()).clauses()
    if kinds:
        clauses.append(FeedbackEvent.kind.in_(list(kinds)))
    last_id = 0
    while True:
        query = (
            select(
                FeedbackEvent,
                Publication.content_item_id,
                ContentItem.model_version_id,
                Publication.channel,
                Publication.arm,
            )
            .join(Publication, Publication.id == FeedbackEvent.publication_id)
            .join(ContentItem, ContentItem.id == Publication.content_item_id)
            .join(ModelVersion, ModelVersion.id == ContentItem.model_version_id)
            .where(FeedbackEvent.id > last_id, *clauses)
            .order_by(FeedbackEvent.id)
            .limit(PAGE)
        )
        with catalog.session() as session:
            rows = [_event_dict(event, c, m, ch, arm) for event, c, m, ch, arm in session.execute(query)]
        yield from rows
        if len(rows) < PAGE:
            return
        last_id = rows[-1]["id"]


def _event_dict(
    event: FeedbackEvent, content_id: str, model_version_id: str, channel: str, arm: str | None
) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": as_utc(event.created_at).isoformat(),
        "publication_id": event.publication_id,
        "content_item_id": content_id,
        "model_version_id": model_version_id,
        "channel": channel,
        "arm": arm,
        "kind": event.kind,
        "value": event.value,
        "text": event.text,
        "viewer": viewer_pseudonym(event.viewer_id),
        "meta": event.meta,
    }


def jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def write_jsonl(rows: Iterator[dict[str, Any]], out: Path) -> int:
    """Write rows to `out` atomically (temp file, rename); the number written."""
    count = 0
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("wb") as handle:
        for line in jsonl_lines(rows):
            handle.write(line)
            count += 1
    tmp.replace(out)
    return count


def write_events_parquet(rows: Iterator[dict[str, Any]], out: Path) -> int:
    """Events as one Parquet file (meta as JSON text), written atomically; the number written."""
    columns: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA.names}
    for row in rows:
        for name in EVENT_SCHEMA.names:
            value = row[name]
            if name == "meta" and value is not None:
                value = json.dumps(value, ensure_ascii=False)
            elif name == "created_at":
                value = datetime.fromisoformat(value)
            columns[name].append(value)
    arrays = [pa.array(columns[name], type=EVENT_SCHEMA.field(name).type) for name in EVENT_SCHEMA.names]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA), sink)
    atomic_write_bytes(out, sink.getvalue().to_pybytes())
    return len(columns["id"])


# -- preference pairs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredItem:
    content_id: str
    modality: str
    condition: dict[str, Any]
    path: str
    score: float
    votes: int


def prompt_of(condition: dict[str, Any] | None) -> str:
    """The condition as a prompt: its prompt text, else its class label, else ''."""
    condition = condition or {}
    return str(condition.get("prompt", condition.get("label", "")))


def item_payload(workspace: Workspace, modality: str, path: str) -> str | None:
    """A text item's text (None when unreadable), or the file path of any other item."""
    if modality != "text":
        return path
    try:
        data = workspace.artifact(path).read_bytes()[:MAX_ITEM_TEXT_BYTES]
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def scored_items(catalog: Catalog, *, model_name: str | None = None) -> list[ScoredItem]:
    """Every voted-on content item with its score (see the module docstring), aggregated in SQL."""
    is_rating = FeedbackEvent.kind == "rating"
    points = case(
        (FeedbackEvent.kind == "like", 1.0),
        (is_rating, (FeedbackEvent.value - 1.0) / 4.0),
        else_=0.0,
    )
    votes = (
        select(
            Publication.content_item_id.label("content_id"),
            func.sum(points).label("points"),
            func.count().label("votes"),
        )
        .join(FeedbackEvent, FeedbackEvent.publication_id == Publication.id)
        .where(FeedbackEvent.kind.in_(("like", "dislike", "rating")), current_events())
        .group_by(Publication.content_item_id)
        .subquery()
    )
    query = (
        select(
            ContentItem.id,
            ContentItem.modality,
            ContentItem.condition,
            ContentItem.path,
            votes.c.points,
            votes.c.votes,
        )
        .join(votes, votes.c.content_id == ContentItem.id)
        .join(ModelVersion, ModelVersion.id == ContentItem.model_version_id)
        .order_by(ContentItem.id)
    )
    if model_name is not None:
        query = query.where(ModelVersion.name == model_name)
    with catalog.session() as session:
        rows = session.execute(query).all()
    return [
        ScoredItem(row[0], row[1], row[2] or {}, row[3], float(row[4]) / int(row[5]), int(row[5]))
        for row in rows
        if int(row[5]) > 0
    ]


def vote_pairs(
    workspace: Workspace, items: list[ScoredItem], *, max_pairs_per_condition: int = 50
) -> Iterator[dict[str, str]]:
    groups: dict[tuple[str, str], list[ScoredItem]] = {}
    for item in items:
        groups.setdefault((item.modality, prompt_of(item.condition)), []).append(item)
    for (modality, prompt), members in sorted(groups.items()):
        ranked = sorted(members, key=lambda item: (-item.score, item.content_id))
        candidates = [(a, b) for a, b in combinations(ranked, 2) if a.score > b.score]
        candidates.sort(
            key=lambda pair: (-(pair[0].score - pair[1].score), pair[0].content_id, pair[1].content_id)
        )
        for better, worse in candidates[:max_pairs_per_condition]:
            chosen = item_payload(workspace, modality, better.path)
            rejected = item_payload(workspace, modality, worse.path)
            if chosen is not None and rejected is not None:
                yield {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def edit_pairs(
    workspace: Workspace, catalog: Catalog, *, model_name: str | None = None
) -> Iterator[dict[str, str]]:
    query = (
        select(FeedbackEvent.text, ContentItem.condition, ContentItem.path)
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .join(ContentItem, ContentItem.id == Publication.content_item_id)
        .join(ModelVersion, ModelVersion.id == ContentItem.model_version_id)
        .where(FeedbackEvent.kind == "edit", ContentItem.modality == "text")
        .order_by(FeedbackEvent.id)
    )
    if model_name is not None:
        query = query.where(ModelVersion.name == model_name)
    with catalog.session() as session:
        rows = session.execute(query).all()
    for edited, condition, path in rows:
        original = item_payload(workspace, "text", path)
        if edited and original is not None and edited.strip() != original.strip():
            yield {"prompt": prompt_of(condition), "chosen": edited, "rejected": original}


def preference_pairs(
    workspace: Workspace,
    catalog: Catalog,
    *,
    model_name: str | None = None,
    max_pairs_per_condition: int = 50,
) -> Iterator[dict[str, str]]:
    """Vote pairs, then edit pairs, as `{"prompt", "chosen", "rejected"}` dicts."""
    items = scored_items(catalog, model_name=model_name)
    yield from vote_pairs(workspace, items, max_pairs_per_condition=max_pairs_per_condition)
    yield from edit_pairs(workspace, catalog, model_name=model_name)

"""Lineage upward: what was made from a dataset version, a model version or a content item.

    dataset version → child dataset versions → runs that trained on any of them
        → model versions those runs produced → their fine-tuned descendants
        → content items → publications → feedback events
    model version → fine-tuned descendants → content → publications → feedback
    content item → publications → feedback

Counts are aggregated in SQL (GROUP BY per model version / publication), so the cost
grows with the number of dataset and model versions, never with the number of
content items or feedback events. Events themselves are listed only on request,
capped at EVENTS_LIMIT.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genloop.catalog.lineage_ids import Subject
from genloop.catalog.models import (
    ContentItem,
    DatasetVersion,
    FeedbackEvent,
    ModelAlias,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)

EVENTS_LIMIT = 1000


def upstream_usage(session: Session, subject: Subject, *, events: bool = False) -> dict[str, Any]:
    """The `up` half of a lineage document (keys documented in genloop.catalog.lineage)."""
    datasets: list[DatasetVersion] = []
    runs: list[dict[str, Any]] = []
    content: dict[str, Any] | None = None
    if subject.kind == "dataset_version":
        datasets = _descendant_datasets(session, subject.id)
        runs = _runs_on(session, [d.id for d in datasets])
        first = session.scalars(
            select(ModelVersion.id).where(ModelVersion.run_id.in_({r["id"] for r in runs}))
        )
        models = _with_descendants(session, list(first))
    elif subject.kind == "model_version":
        models = _with_descendants(session, [subject.id])
    else:
        models = []
        content = _content_usage(session, subject.id)
    runs += _fine_tune_runs(session, models, subject, {r["id"] for r in runs})
    versions = _model_usage(session, models)
    if content is not None:
        totals = _totals([content["feedback"]], [len(content["publications"])], 1)
        scope = Publication.content_item_id == subject.id
    else:
        totals = _totals(
            [v["feedback"] for v in versions],
            [v["publications"] for v in versions],
            sum(v["content_items"] for v in versions),
        )
        scope = ContentItem.model_version_id.in_(models)
    listed, truncated = _events(session, scope) if events else (None, False)
    return {
        "dataset_versions": [_dataset_row(d) for d in datasets],
        "runs": runs,
        "model_versions": versions,
        "content": content,
        "totals": totals,
        "events": listed,
        "events_truncated": truncated,
    }


def _descendant_datasets(session: Session, dataset_id: str) -> list[DatasetVersion]:
    """The dataset version and every version derived from it, breadth first (one query per generation)."""
    found = list(session.scalars(select(DatasetVersion).where(DatasetVersion.id == dataset_id)))
    seen, frontier = {dataset_id}, [dataset_id]
    while frontier:
        children = session.scalars(
            select(DatasetVersion).where(DatasetVersion.parent_id.in_(frontier)).order_by(DatasetVersion.id)
        ).all()
        children = [c for c in children if c.id not in seen]  # a corrupted cycle must not loop forever
        seen.update(c.id for c in children)
        found += children
        frontier = [c.id for c in children]
    return found


def _dataset_row(dataset: DatasetVersion) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "stage": dataset.stage,
        "records": dataset.record_count,
        "parent_id": dataset.parent_id,
    }


def _runs_on(session: Session, dataset_ids: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Run, RunDataset.dataset_version_id, RunDataset.role)
        .join(RunDataset, RunDataset.run_id == Run.id)
        .where(RunDataset.dataset_version_id.in_(dataset_ids))
        .order_by(Run.started_at, Run.id, RunDataset.dataset_version_id)
    ).all()
    return [_run_row(run, dataset_id, role) for run, dataset_id, role in rows]


def _run_row(run: Run, dataset_id: str | None, role: str | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "model_name": run.model_name,
        "family": run.family,
        "status": run.status,
        "dataset_version_id": dataset_id,
        "role": role,
    }


def _fine_tune_runs(
    session: Session, models: list[str], subject: Subject, known: set[str]
) -> list[dict[str, Any]]:
    """Runs that made a descendant model version and are not already listed (role `fine-tune`)."""
    own = session.get(ModelVersion, subject.id) if subject.kind == "model_version" else None
    skip = known | ({own.run_id} if own else set())  # the subject's own run is upstream, not downstream
    rows = session.scalars(
        select(Run)
        .join(ModelVersion, ModelVersion.run_id == Run.id)
        .where(ModelVersion.id.in_(models))
        .order_by(Run.started_at, Run.id)
    ).all()
    return [_run_row(run, None, "fine-tune") for run in dict.fromkeys(rows) if run.id not in skip]


def _with_descendants(session: Session, roots: list[str]) -> list[str]:
    """`roots` and every version fine-tuned from them (transitively), one query per generation."""
    found, frontier = list(dict.fromkeys(roots)), list(dict.fromkeys(roots))
    while frontier:
        children = session.scalars(
            select(ModelVersion.id).where(ModelVersion.parent_id.in_(frontier)).order_by(ModelVersion.id)
        ).all()
        frontier = [c for c in children if c not in found]
        found += frontier
    return found


def _model_usage(session: Session, model_ids: list[str]) -> list[dict[str, Any]]:
    """Each version with its aliases and content / publication / feedback counts: 5 queries in all."""
    if not model_ids:
        return []
    rows = session.scalars(select(ModelVersion).where(ModelVersion.id.in_(model_ids))).all()
    by_id = {row.id: row for row in rows}
    aliases: dict[str, list[str]] = {}
    for alias in session.scalars(
        select(ModelAlias).where(ModelAlias.model_version_id.in_(model_ids)).order_by(ModelAlias.alias)
    ):
        aliases.setdefault(alias.model_version_id, []).append(alias.alias)
    items = dict(
        session.execute(
            select(ContentItem.model_version_id, func.count())
            .where(ContentItem.model_version_id.in_(model_ids))
            .group_by(ContentItem.model_version_id)
        ).all()
    )
    publications = dict(
        session.execute(
            select(ContentItem.model_version_id, func.count(Publication.id))
            .join(Publication, Publication.content_item_id == ContentItem.id)
            .where(ContentItem.model_version_id.in_(model_ids))
            .group_by(ContentItem.model_version_id)
        ).all()
    )
    feedback: dict[str, dict[str, int]] = {}
    for model_id, kind, count in session.execute(
        select(ContentItem.model_version_id, FeedbackEvent.kind, func.count())
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .join(ContentItem, ContentItem.id == Publication.content_item_id)
        .where(ContentItem.model_version_id.in_(model_ids))
        .group_by(ContentItem.model_version_id, FeedbackEvent.kind)
    ):
        feedback.setdefault(model_id, {})[kind] = int(count)
    return [
        {
            "id": model_id,
            "name": by_id[model_id].name,
            "version": by_id[model_id].version,
            "family": by_id[model_id].family,
            "run_id": by_id[model_id].run_id,
            "parent_id": by_id[model_id].parent_id,
            "aliases": aliases.get(model_id, []),
            "content_items": int(items.get(model_id, 0)),
            "publications": int(publications.get(model_id, 0)),
            "feedback": dict(sorted(feedback.get(model_id, {}).items())),
        }
        for model_id in model_ids
        if model_id in by_id
    ]


def _content_usage(session: Session, content_id: str) -> dict[str, Any]:
    publications = session.scalars(
        select(Publication).where(Publication.content_item_id == content_id).order_by(Publication.id)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for publication_id, kind, count in session.execute(
        select(FeedbackEvent.publication_id, FeedbackEvent.kind, func.count())
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .where(Publication.content_item_id == content_id)
        .group_by(FeedbackEvent.publication_id, FeedbackEvent.kind)
    ):
        counts.setdefault(publication_id, {})[kind] = int(count)
    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "channel": p.channel,
            "arm": p.arm,
            "published_at": p.published_at.isoformat(),
            "feedback": dict(sorted(counts.get(p.id, {}).items())),
        }
        for p in publications
    ]
    overall: dict[str, int] = {}
    for row in rows:
        for kind, count in row["feedback"].items():
            overall[kind] = overall.get(kind, 0) + count
    return {"id": content_id, "publications": rows, "feedback": dict(sorted(overall.items()))}


def _totals(feedback: list[dict[str, int]], publications: list[int], items: int) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for counts in feedback:
        for kind, count in counts.items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    return {
        "content_items": items,
        "publications": sum(publications),
        "feedback_events": sum(by_kind.values()),
        "feedback": dict(sorted(by_kind.items())),
    }


def _events(session: Session, scope: Any) -> tuple[list[dict[str, Any]], bool]:
    rows = session.execute(
        select(FeedbackEvent, Publication.content_item_id, Publication.channel)
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .join(ContentItem, ContentItem.id == Publication.content_item_id)
        .where(scope)
        .order_by(FeedbackEvent.id)
        .limit(EVENTS_LIMIT + 1)
    ).all()
    listed = [
        {
            "id": event.id,
            "kind": event.kind,
            "value": event.value,
            "viewer_id": event.viewer_id,
            "publication_id": event.publication_id,
            "channel": channel,
            "content_item_id": content_id,
            "created_at": event.created_at.isoformat(),
        }
        for event, content_id, channel in rows[:EVENTS_LIMIT]
    ]
    return listed, len(rows) > EVENTS_LIMIT

"""Lineage: where a content item, model version or dataset version came from, and what it became.

    down: content item → model version (→ parent versions) → run → dataset versions
              (→ their parent versions) → sources with record counts and licenses
    up:   dataset version → child dataset versions → runs → model versions
              (→ fine-tuned versions) → content → publications → feedback events

Every downward hop is a foreign key, so `down` is a handful of primary-key lookups;
`up` aggregates counts in SQL (see genloop.catalog.lineage_up).

`lineage(catalog, ref)` returns one JSON-ready document with these keys (always all
present; a key that does not apply is null):

    schema       "genloop.lineage/1"
    subject      {"kind": "content" | "model_version" | "dataset_version", "id"}
    direction    "down" | "up" | "both"
    down         null when direction is "up", else:
      content          the content item (id, modality, path, condition, seed, labels,
                       created_at) when the subject is one, else null
      model_version    {id, name, version, family, feedback_count, parent: <same, or null>,
                        run: {id, family, status, epochs_done, config,
                              datasets: [{role, chain: [<dataset version>, ...]}]}}
                       for a content or model subject, else null
      dataset_chain    [<dataset version>, ...] for a dataset subject, else null
                       (a chain runs from the version itself to its collect-stage root;
                        <dataset version> = {id, name, stage, records, parent_id,
                        sources: [{source, license, records}]})
      sources          every distinct {source, license} reached, sorted
      licenses         every distinct license reached, sorted
    up           null when direction is "down", else:
      dataset_versions [{id, name, stage, records, parent_id}]: the subject dataset and its
                       descendants (empty for other subjects)
      runs             [{id, model_name, family, status, dataset_version_id, role}]: runs
                       that trained on those datasets (role train / feedback / ...) and runs
                       that fine-tuned a downstream model version (role "fine-tune")
      model_versions   [{id, name, version, family, run_id, parent_id, aliases,
                         content_items, publications, feedback: {kind: count}}]
      content          for a content subject: {id, feedback: {kind: count},
                       publications: [{id, channel, arm, published_at, feedback}]}, else null
      totals           {content_items, publications, feedback_events, feedback: {kind: count}}
      events           null unless asked for (events=True): [{id, kind, value, viewer_id,
                       publication_id, channel, content_item_id, created_at}], oldest first,
                       at most EVENTS_LIMIT
      events_truncated true when more than EVENTS_LIMIT events exist

`lineage_for_content` / `licenses_in` keep the older content-only shape the web console,
the JSON API and feedback datasets use.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.lineage_ids import Subject, resolve_subject
from genloop.catalog.lineage_up import EVENTS_LIMIT, upstream_usage
from genloop.catalog.models import (
    ContentItem,
    DatasetVersion,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)
from genloop.errors import GenloopError, NotFoundError

SCHEMA = "genloop.lineage/1"
DIRECTIONS = ("down", "up", "both")
__all__ = ["DIRECTIONS", "EVENTS_LIMIT", "SCHEMA", "Subject", "licenses_in", "lineage", "lineage_for_content"]


def lineage(catalog: Catalog, ref: str, *, direction: str = "both", events: bool = False) -> dict[str, Any]:
    """The lineage document for `ref` (any id kind; see genloop.catalog.lineage_ids)."""
    if direction not in DIRECTIONS:
        raise GenloopError(f"unknown direction {direction!r}", hint=f"use one of: {', '.join(DIRECTIONS)}")
    with catalog.session() as session:
        subject = resolve_subject(session, ref)
        return {
            "schema": SCHEMA,
            "subject": {"kind": subject.kind, "id": subject.id},
            "direction": direction,
            "down": _downstream_origin(session, subject) if direction != "up" else None,
            "up": upstream_usage(session, subject, events=events) if direction != "down" else None,
        }


def _downstream_origin(session: Session, subject: Subject) -> dict[str, Any]:
    content = model = chain = None
    if subject.kind == "content":
        item = session.get(ContentItem, subject.id)
        assert item is not None  # resolve_subject found it in this session
        content = _content_row(item)
        model = model_lineage(session, item.model_version_id)
    elif subject.kind == "model_version":
        model = model_lineage(session, subject.id)
    else:
        chain = _dataset_chain(session, subject.id)
    versions = list(chain or []) + _chains_of(model)
    pairs = sorted({(s["source"], s["license"]) for v in versions for s in v["sources"]})
    return {
        "content": content,
        "model_version": model,
        "dataset_chain": chain,
        "sources": [{"source": source, "license": license} for source, license in pairs],
        "licenses": sorted({license for _, license in pairs}),
    }


def _chains_of(model: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every dataset version under a model lineage (its run's and its ancestors' runs')."""
    versions: list[dict[str, Any]] = []
    while model:
        for dataset in (model.get("run") or {}).get("datasets", []):
            versions += dataset["chain"]
        model = model.get("parent")
    return versions


def _content_row(item: ContentItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "modality": item.modality,
        "path": item.path,
        "condition": item.condition,
        "seed": item.seed,
        "labels": item.labels,
        "created_at": item.created_at.isoformat(),
    }


def _dataset_chain(session: Session, dataset_id: str) -> list[dict[str, Any]]:
    """The dataset version and its ancestors (annotate → clean → collect), newest first."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current = session.get(DatasetVersion, dataset_id)
    while current is not None and current.id not in seen:  # a corrupt cycle ends here
        seen.add(current.id)
        chain.append(
            {
                "id": current.id,
                "name": current.name,
                "stage": current.stage,
                "records": current.record_count,
                "parent_id": current.parent_id,
                "sources": [
                    {"source": s.source, "license": s.license, "records": s.record_count}
                    for s in sorted(current.sources, key=lambda s: (s.source, s.license))
                ],
            }
        )
        current = session.get(DatasetVersion, current.parent_id) if current.parent_id else None
    return chain


def _run_lineage(session: Session, run: Run) -> dict[str, Any]:
    roles = session.scalars(
        select(RunDataset).where(RunDataset.run_id == run.id).order_by(RunDataset.dataset_version_id)
    ).all()
    return {
        "id": run.id,
        "family": run.family,
        "status": run.status,
        "epochs_done": run.epochs_done,
        "config": run.config,
        "datasets": [{"role": r.role, "chain": _dataset_chain(session, r.dataset_version_id)} for r in roles],
    }


def model_lineage(session: Session, version_id: str, _seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A model version, its run and data, and (recursively) the version it was fine-tuned from."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFoundError(f"model version {version_id!r} is not in the catalog")
    run = session.get(Run, version.run_id)
    seen = _seen | {version.id}
    parent = version.parent_id if version.parent_id not in seen else None  # a corrupt cycle ends here
    return {
        "id": version.id,
        "name": version.name,
        "version": version.version,
        "family": version.family,
        "feedback_count": version.feedback_count,
        "parent": model_lineage(session, parent, seen) if parent else None,
        "run": _run_lineage(session, run) if run else None,
    }


def lineage_for_content(catalog: Catalog, content_id: str) -> dict[str, Any]:
    """The whole chain for one content item (id or unique id prefix of at least 8 characters)."""
    with catalog.session() as session:
        item = _find_content(session, content_id)
        publications = session.scalars(
            select(Publication).where(Publication.content_item_id == item.id)
        ).all()
        return {
            "content": _content_row(item),
            "publications": [
                {"id": p.id, "channel": p.channel, "published_at": p.published_at.isoformat()}
                for p in publications
            ],
            "model_version": model_lineage(session, item.model_version_id),
        }


def _find_content(session: Session, content_id: str) -> ContentItem:
    item = session.get(ContentItem, content_id)
    if item is not None:
        return item
    if len(content_id) >= 8:
        matches = session.scalars(
            select(ContentItem).where(ContentItem.id.startswith(content_id, autoescape=True)).limit(2)
        ).all()
        if len(matches) == 1:
            return matches[0]
    raise NotFoundError(
        f"content item {content_id!r} is not in the catalog",
        hint="the id is printed by `genloop generate` and shown in the gallery; "
        "`genloop lineage --help` has examples",
    )


def licenses_in(document: dict[str, Any]) -> list[str]:
    """Every license that contributed, across all ancestors: of a `lineage_for_content` result or
    of a `lineage` document (its `down` half)."""
    if document.get("schema") == SCHEMA:
        return list((document.get("down") or {}).get("licenses", []))
    return sorted({s["license"] for v in _chains_of(document.get("model_version")) for s in v["sources"]})

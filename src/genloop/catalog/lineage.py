"""Lineage: from one content item back to the data and licenses it came from.

    content item → model version (→ parent versions) → run → dataset versions
                 (→ their parent versions) → sources with licenses

Every hop is a foreign key in the catalog, so this is a handful of primary-key
lookups, not a scan.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genloop.catalog import Catalog
from genloop.catalog.models import (
    ContentItem,
    DatasetVersion,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)
from genloop.errors import NotFoundError


def _dataset_chain(session: Session, dataset_id: str) -> list[dict[str, Any]]:
    """The dataset version and its ancestors (annotate → clean → collect), newest first."""
    chain = []
    current = session.get(DatasetVersion, dataset_id)
    while current is not None:
        chain.append(
            {
                "id": current.id,
                "name": current.name,
                "stage": current.stage,
                "records": current.record_count,
                "sources": [
                    {"source": s.source, "license": s.license, "records": s.record_count}
                    for s in current.sources
                ],
            }
        )
        current = session.get(DatasetVersion, current.parent_id) if current.parent_id else None
    return chain


def _run_lineage(session: Session, run: Run) -> dict[str, Any]:
    roles = session.scalars(select(RunDataset).where(RunDataset.run_id == run.id)).all()
    return {
        "id": run.id,
        "family": run.family,
        "status": run.status,
        "epochs_done": run.epochs_done,
        "config": run.config,
        "datasets": [{"role": r.role, "chain": _dataset_chain(session, r.dataset_version_id)} for r in roles],
    }


def model_lineage(session: Session, version_id: str) -> dict[str, Any]:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFoundError(f"model version {version_id!r} is not in the catalog")
    run = session.get(Run, version.run_id)
    return {
        "id": version.id,
        "name": version.name,
        "version": version.version,
        "family": version.family,
        "feedback_count": version.feedback_count,
        "parent": model_lineage(session, version.parent_id) if version.parent_id else None,
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
            "content": {
                "id": item.id,
                "modality": item.modality,
                "path": item.path,
                "condition": item.condition,
                "seed": item.seed,
                "labels": item.labels,
                "created_at": item.created_at.isoformat(),
            },
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


def licenses_in(lineage: dict[str, Any]) -> list[str]:
    """Every license that contributed to a content item, across all ancestors."""
    found: set[str] = set()

    def walk_model(model: dict[str, Any] | None) -> None:
        if not model:
            return
        for dataset in (model.get("run") or {}).get("datasets", []):
            for version in dataset["chain"]:
                found.update(s["license"] for s in version["sources"])
        walk_model(model.get("parent"))

    walk_model(lineage["model_version"])
    return sorted(found)

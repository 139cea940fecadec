"""The report's dataset part: each dataset version's counts and what its cleaning dropped.

Counts come from the version's manifest; the per-step and per-reason drops from
`genloop.data.report.stage_report`, the same numbers `genloop data report` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.data.datasets import open_dataset_version
from genloop.data.report import DropReason, stage_report
from genloop.errors import GenloopError
from genloop.report.plots import bar_chart
from genloop.workspace import Workspace

MAX_DATASET_VERSIONS = 20  # newest first; older ones are listed by `genloop data ls`
CLEANING_STAGES = ("clean", "annotate")


@dataclass
class DatasetSummary:
    id: str
    name: str
    stage: str
    parent: str | None
    records: int
    created: str
    splits: dict[str, int]
    labels: dict[str, int]
    sources: list[dict[str, Any]]
    licenses: dict[str, int]
    labels_chart: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[DropReason] = field(default_factory=list)
    problem: str | None = None  # e.g. the version's files are gone from disk


def _licenses(sources: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for source in sources:
        license_name = str(source.get("license") or "(unknown)")
        counts[license_name] = counts.get(license_name, 0) + int(source.get("records", 0))
    return counts


def _summary(workspace: Workspace, catalog: Catalog, row: DatasetVersion) -> DatasetSummary:
    manifest = row.manifest or {}
    sources = list(manifest.get("sources", []))
    labels = {str(k): int(v) for k, v in (manifest.get("labels") or {}).items()}
    summary = DatasetSummary(
        id=row.id,
        name=row.name,
        stage=row.stage,
        parent=row.parent_id,
        records=row.record_count,
        created=f"{row.created_at:%Y-%m-%d %H:%M}",
        splits={str(k): int(v) for k, v in (manifest.get("splits") or {}).items()},
        labels=labels,
        sources=sources,
        licenses=_licenses(sources),
    )
    if len(labels) > 1:
        summary.labels_chart = bar_chart(labels, title=f"{row.name} · {row.stage}: records per label")
    if row.stage in CLEANING_STAGES and (manifest.get("report") or {}).get("steps"):
        try:
            stage = stage_report(open_dataset_version(workspace, catalog, row.id))
        except GenloopError as exc:  # removed from disk: the catalog's numbers are still worth showing
            summary.problem = exc.message
        else:
            summary.steps = stage.steps
            summary.reasons = stage.reasons
    return summary


def dataset_summaries(workspace: Workspace, catalog: Catalog) -> tuple[list[DatasetSummary], int]:
    """The newest MAX_DATASET_VERSIONS versions (newest first) and how many exist in all."""
    with catalog.session() as session:
        rows = session.scalars(select(DatasetVersion).order_by(DatasetVersion.created_at.desc())).all()
    return [_summary(workspace, catalog, row) for row in rows[:MAX_DATASET_VERSIONS]], len(rows)

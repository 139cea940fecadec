"""Dataset versions: `GET /api/v1/datasets`, `/datasets/{id}` (viewer).

A version's detail is its manifest in summary: counts per label and split, sources
with their licenses, and the cleaning report's counts per step and per drop reason.
The report's example locations (file paths on the machine that cleaned) are left out:
`genloop data report` shows them to whoever has the files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from genloop.catalog.models import DatasetVersion
from genloop.errors import NotFoundError
from genloop.feedback.events import as_utc
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["datasets"])

NAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"


class DatasetSourcePublic(BaseModel):
    source: str
    license: str
    record_count: int


class DatasetSummary(BaseModel):
    id: str
    name: str
    stage: str
    parent_id: str | None
    record_count: int
    created_at: datetime
    sources: list[DatasetSourcePublic]


class DatasetPage(BaseModel):
    items: list[DatasetSummary]
    limit: int
    offset: int
    has_more: bool


class StepSummary(BaseModel):
    name: str
    seen: int
    kept: int
    dropped: dict[str, int]
    """Records dropped, per reason kind."""


class StepReportSummary(BaseModel):
    kept: int | None
    dropped: dict[str, int]
    """Over all steps, per reason kind."""
    input_errors: int
    steps: list[StepSummary]


class DatasetDetail(DatasetSummary):
    classes: list[str] | None
    labels: dict[str, int]
    """Records per label (`(none)`: unlabelled)."""
    splits: dict[str, int]
    shards: int
    report: StepReportSummary | None
    """The cleaning / annotation report (None: the stage ran no steps)."""
    children: list[str]
    """Versions derived from this one (clean of a collect, annotate of a clean, ...)."""


def _summary(row: DatasetVersion) -> DatasetSummary:
    return DatasetSummary(
        id=row.id,
        name=row.name,
        stage=row.stage,
        parent_id=row.parent_id,
        record_count=row.record_count,
        created_at=as_utc(row.created_at),
        sources=[
            DatasetSourcePublic(source=s.source, license=s.license, record_count=s.record_count)
            for s in row.sources
        ],
    )


def _int_map(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}


def _dropped_counts(value: Any) -> dict[str, int]:
    """`{kind: count}` or `{kind: {"count": n, "examples": [...]}}` → `{kind: count}`."""
    if not isinstance(value, dict):
        return {}
    counts = {}
    for kind, entry in value.items():
        count = entry.get("count") if isinstance(entry, dict) else entry
        if isinstance(count, int | float):
            counts[str(kind)] = int(count)
    return counts


def _report(manifest: dict[str, Any]) -> StepReportSummary | None:
    report = manifest.get("report")
    if not isinstance(report, dict) or not report:
        return None
    steps = [
        StepSummary(
            name=str(step.get("name", "?")),
            seen=int(step.get("seen", 0)),
            kept=int(step.get("kept", 0)),
            dropped=_dropped_counts(step.get("dropped")),
        )
        for step in report.get("steps") or []
        if isinstance(step, dict)
    ]
    errors = report.get("input_errors")
    kept = report.get("kept")
    return StepReportSummary(
        kept=int(kept) if isinstance(kept, int | float) else None,
        dropped=_dropped_counts(report.get("dropped")),
        input_errors=int(errors.get("count", 0)) if isinstance(errors, dict) else 0,
        steps=steps,
    )


@router.get(
    "/datasets",
    response_model=DatasetPage,
    operation_id="list_datasets",
    summary="Dataset versions, newest first, with their sources and licenses",
    **requires("viewer"),
)
def list_datasets_route(
    catalog: CatalogDep,
    name: Annotated[str | None, Query(max_length=128, pattern=NAME_PATTERN)] = None,
    stage: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DatasetPage:
    query = (
        select(DatasetVersion)
        .options(selectinload(DatasetVersion.sources))
        .order_by(DatasetVersion.created_at.desc(), DatasetVersion.id)
        .limit(limit + 1)
        .offset(offset)
    )
    if name is not None:
        query = query.where(DatasetVersion.name == name)
    if stage is not None:
        query = query.where(DatasetVersion.stage == stage)
    with catalog.session() as session:
        rows = [_summary(row) for row in session.scalars(query)]
    return DatasetPage(items=rows[:limit], limit=limit, offset=offset, has_more=len(rows) > limit)


@router.get(
    "/datasets/{dataset_id}",
    response_model=DatasetDetail,
    operation_id="get_dataset",
    summary="One dataset version: counts per label and split, sources, licenses, cleaning report",
    responses=ERROR_RESPONSES,
    **requires("viewer"),
)
def get_dataset_route(catalog: CatalogDep, dataset_id: Annotated[str, Path(max_length=64)]) -> DatasetDetail:
    with catalog.session() as session:
        row = session.get(DatasetVersion, dataset_id, options=[selectinload(DatasetVersion.sources)])
        if row is None:
            raise NotFoundError(
                f"no dataset version {dataset_id!r}", hint="GET /api/v1/datasets lists the dataset versions"
            )
        children = list(
            session.scalars(
                select(DatasetVersion.id)
                .where(DatasetVersion.parent_id == row.id)
                .order_by(DatasetVersion.id)
            )
        )
        summary, manifest = _summary(row), dict(row.manifest or {})
    classes = manifest.get("classes")
    return DatasetDetail(
        **summary.model_dump(),
        classes=[str(c) for c in classes] if isinstance(classes, list) else None,
        labels=_int_map(manifest.get("labels")),
        splits=_int_map(manifest.get("splits")),
        shards=len(manifest.get("shards") or []),
        report=_report(manifest),
        children=children,
    )

"""Training runs: `GET /api/v1/runs`, `/runs/{id}`, `/runs/{id}/metrics` (viewer).

`/metrics` returns the run's logged points `(step, epoch, name, value)` in step order,
optionally only some metric names and only after a step: the console's live loss curve
polls with `after_step` set to the last step it has, so each poll carries only new points.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from genloop.catalog.models import ModelVersion, Run, RunDataset, RunMetric
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.events import as_utc
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["runs"])

RUN_STATUSES = ("running", "completed", "failed")
METRIC_NAME = re.compile(r"[A-Za-z0-9_./:-]+")
MAX_POINTS = 20_000


class RunDatasetPublic(BaseModel):
    dataset_version_id: str
    role: str


class RunSummary(BaseModel):
    id: str
    model_name: str
    family: str
    status: str
    parent_model_version_id: str | None
    epochs_done: int
    steps_done: int
    started_at: datetime
    finished_at: datetime | None


class RunPage(BaseModel):
    items: list[RunSummary]
    limit: int
    offset: int
    has_more: bool


class RunDetail(RunSummary):
    config: dict[str, Any]
    datasets: list[RunDatasetPublic]
    model_versions: list[str]
    """The versions this run registered."""
    metric_names: list[str]
    latest_metrics: dict[str, float]
    """Each metric's value at its last logged step."""


class MetricPoint(BaseModel):
    step: int
    epoch: int
    name: str
    value: float | None
    """None where the logged value was not finite (NaN, ±inf)."""


class RunMetrics(BaseModel):
    run_id: str
    names: list[str]
    """Every metric name the run logged (not only the ones returned)."""
    points: list[MetricPoint]
    truncated: bool
    """More points follow: ask again with after_step = the last step returned."""


def _summary(row: Run) -> RunSummary:
    return RunSummary(
        id=row.id,
        model_name=row.model_name,
        family=row.family,
        status=row.status,
        parent_model_version_id=row.parent_model_version_id,
        epochs_done=row.epochs_done,
        steps_done=row.steps_done,
        started_at=as_utc(row.started_at),
        finished_at=None if row.finished_at is None else as_utc(row.finished_at),
    )


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def _not_found(run_id: str) -> NotFoundError:
    return NotFoundError(f"no run {run_id!r}", hint="GET /api/v1/runs lists the runs")


@router.get(
    "/runs",
    response_model=RunPage,
    operation_id="list_runs",
    summary="Training runs, newest first",
    **requires("viewer"),
)
def list_runs_route(
    catalog: CatalogDep,
    model_name: Annotated[str | None, Query(max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(RUN_STATUSES)})] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunPage:
    if status is not None and status not in RUN_STATUSES:
        raise GenloopError(f"unknown run status {status!r}", hint=f"statuses: {', '.join(RUN_STATUSES)}")
    query = select(Run).order_by(Run.started_at.desc(), Run.id).limit(limit + 1).offset(offset)
    if model_name is not None:
        query = query.where(Run.model_name == model_name)
    if status is not None:
        query = query.where(Run.status == status)
    with catalog.session() as session:
        rows = [_summary(row) for row in session.scalars(query)]
    return RunPage(items=rows[:limit], limit=limit, offset=offset, has_more=len(rows) > limit)


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    operation_id="get_run",
    summary="One run: config, datasets, registered versions, latest value of each metric",
    responses=ERROR_RESPONSES,
    **requires("viewer"),
)
def get_run_route(catalog: CatalogDep, run_id: Annotated[str, Path(max_length=64)]) -> RunDetail:
    with catalog.session() as session:
        row = session.get(Run, run_id)
        if row is None:
            raise _not_found(run_id)
        datasets = session.scalars(select(RunDataset).where(RunDataset.run_id == run_id)).all()
        versions = session.scalars(
            select(ModelVersion.id).where(ModelVersion.run_id == run_id).order_by(ModelVersion.version)
        ).all()
        last_step = (
            select(RunMetric.name, func.max(RunMetric.step).label("step"))
            .where(RunMetric.run_id == run_id)
            .group_by(RunMetric.name)
            .subquery()
        )
        latest = session.execute(
            select(RunMetric.name, RunMetric.value, RunMetric.id)
            .join(last_step, (RunMetric.name == last_step.c.name) & (RunMetric.step == last_step.c.step))
            .where(RunMetric.run_id == run_id)
            .order_by(RunMetric.id)
        ).all()
        summary, config = _summary(row), dict(row.config or {})
    latest_metrics: dict[str, float] = {}
    for name, value, _ in latest:  # later rows (same step, logged again) win
        finite = _finite(value)
        if finite is not None:
            latest_metrics[name] = finite
    return RunDetail(
        **summary.model_dump(),
        config=config,
        datasets=[RunDatasetPublic(dataset_version_id=d.dataset_version_id, role=d.role) for d in datasets],
        model_versions=list(versions),
        metric_names=sorted({name for name, _, _ in latest}),
        latest_metrics=latest_metrics,
    )


@router.get(
    "/runs/{run_id}/metrics",
    response_model=RunMetrics,
    operation_id="get_run_metrics",
    summary="A run's logged metrics (loss curves), in step order; filter by name and after a step",
    responses=ERROR_RESPONSES,
    **requires("viewer"),
)
def get_run_metrics_route(
    catalog: CatalogDep,
    run_id: Annotated[str, Path(max_length=64)],
    name: Annotated[list[str] | None, Query(max_length=20)] = None,
    after_step: Annotated[int, Query(ge=-1, le=2_000_000_000)] = -1,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = MAX_POINTS,
) -> RunMetrics:
    for metric in name or []:
        if not 1 <= len(metric) <= 64 or METRIC_NAME.fullmatch(metric) is None:
            raise GenloopError(
                f"invalid metric name {metric[:80]!r}",
                hint="metric names are letters, digits and `_ . / : -`",
            )
    with catalog.session() as session:
        if session.get(Run, run_id) is None:
            raise _not_found(run_id)
        names = sorted(session.scalars(select(RunMetric.name).where(RunMetric.run_id == run_id).distinct()))
        query = (
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.step > after_step)
            .order_by(RunMetric.step, RunMetric.id)
            .limit(limit + 1)
        )
        if name:
            query = query.where(RunMetric.name.in_(name))
        rows = session.scalars(query).all()
        points = [
            MetricPoint(step=r.step, epoch=r.epoch, name=r.name, value=_finite(r.value)) for r in rows[:limit]
        ]
    return RunMetrics(run_id=run_id, names=names, points=points, truncated=len(rows) > limit)

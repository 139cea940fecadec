"""The human annotation queue (reviewer): see the open tasks, label them.

    GET  /api/v1/annotations/queue         counts per dataset version + the open tasks the caller
                                           has not labelled yet, oldest first
    POST /api/v1/annotations/{task_id}     {label}: the caller's label (replaces their earlier one)

The annotator is the API key's name, so each person needs a key of their own for the
agreement figures (`genloop annotations agreement`) to mean anything. The functions are
`genloop.data.annotate.queue`'s, as in `genloop annotations`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from genloop.catalog.models import Annotation, AnnotationTask
from genloop.data.annotate.queue import MAX_LABEL, TaskView, queue_counts, submit
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["annotations"])

TASK_ID = Annotated[int, Path(ge=1, le=2**31 - 1)]


class QueueCountPublic(BaseModel):
    dataset_version_id: str
    open: int
    done: int
    annotations: int


class TaskPublic(BaseModel):
    id: int
    dataset_version_id: str
    record_id: str
    status: str
    """open | done"""
    suggested_label: str | None
    suggested_confidence: float | None
    annotators_required: int
    labelled_by: int
    """How many people labelled it so far."""
    my_label: str | None
    """The caller's own label, when they gave one."""


class AnnotationQueue(BaseModel):
    annotator: str
    counts: list[QueueCountPublic]
    tasks: list[TaskPublic]
    """Open tasks the caller has not labelled, oldest first."""


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=MAX_LABEL)


def _annotator(request: Request) -> str:
    principal: Principal = request.state.principal
    return principal.name


def _public(task: TaskView, annotator: str) -> TaskPublic:
    return TaskPublic(
        id=task.id,
        dataset_version_id=task.dataset_version_id,
        record_id=task.record_id,
        status=task.status,
        suggested_label=task.suggested_label,
        suggested_confidence=task.suggested_confidence,
        annotators_required=task.annotators_required,
        labelled_by=len(task.labels),
        my_label=task.labels.get(annotator),
    )


@router.get(
    "/annotations/queue",
    response_model=AnnotationQueue,
    operation_id="get_annotation_queue",
    summary="Open and done tasks per dataset version, and the caller's next open tasks",
    **requires("reviewer"),
)
def annotation_queue_route(
    request: Request,
    catalog: CatalogDep,
    dataset_version_id: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z_.-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> AnnotationQueue:
    annotator = _annotator(request)
    query = (
        select(AnnotationTask)
        .options(selectinload(AnnotationTask.annotations))
        .where(
            AnnotationTask.status == "open",
            ~AnnotationTask.annotations.any(Annotation.annotator == annotator),
        )
        .order_by(AnnotationTask.id)
        .limit(limit)
    )
    if dataset_version_id is not None:
        query = query.where(AnnotationTask.dataset_version_id == dataset_version_id)
    with catalog.session() as session:
        tasks = [TaskView.of(task) for task in session.scalars(query)]
    counts = [
        QueueCountPublic(**vars(c))
        for c in queue_counts(catalog)
        if dataset_version_id is None or c.dataset_version_id == dataset_version_id
    ]
    return AnnotationQueue(
        annotator=annotator, counts=counts, tasks=[_public(task, annotator) for task in tasks]
    )


@router.post(
    "/annotations/{task_id}",
    response_model=TaskPublic,
    operation_id="label_annotation_task",
    summary="Label a task as the caller (replaces the caller's earlier label)",
    responses=ERROR_RESPONSES,
    **requires("reviewer"),
)
def label_task_route(request: Request, catalog: CatalogDep, task_id: TASK_ID, body: LabelBody) -> TaskPublic:
    annotator = _annotator(request)
    return _public(submit(catalog, task_id, annotator, body.label), annotator)

"""The human annotation queue in the catalog: enqueue records, hand out tasks, take labels.

A task is one record of one dataset version (`annotation_tasks`), optionally with the
auto-labeller's suggestion, and needs `annotators_required` different people's
labels (`annotations`, one per person; labelling again replaces one's own label).
A task is `done` once it has that many. Several workers may serve the queue at once:
every call is one short transaction and nothing is held in memory between calls.

Agreement between annotators is computed from the same tables (`agreement`), and
`apply.py` merges the majority labels into a new dataset version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from genloop.catalog import Catalog
from genloop.catalog.models import Annotation, AnnotationTask, DatasetVersion
from genloop.data.annotate.agreement import cohen_kappa, fleiss_kappa
from genloop.data.annotate.auto import Suggestion
from genloop.errors import DataError, NotFoundError

MAX_NAME = 128
MAX_LABEL = 256


@dataclass(frozen=True)
class TaskView:
    """A task as callers see it (no live ORM object leaves this module)."""

    id: int
    dataset_version_id: str
    record_id: str
    status: str
    suggested_label: str | None
    suggested_confidence: float | None
    annotators_required: int
    labels: dict[str, str] = field(default_factory=dict)  # annotator -> label

    @classmethod
    def of(cls, task: AnnotationTask) -> TaskView:
        return cls(
            task.id,
            task.dataset_version_id,
            task.record_id,
            task.status,
            task.suggested_label,
            task.suggested_confidence,
            task.annotators_required,
            {a.annotator: a.label for a in task.annotations},
        )


def enqueue(
    catalog: Catalog,
    dataset_version_id: str,
    records: Iterable[tuple[str, Suggestion | None]],
    *,
    annotators: int = 1,
) -> int:
    """Queue `(record_id, suggestion)` pairs of a dataset version; records already queued are skipped.

    Returns how many tasks were created.
    """
    if annotators < 1:
        raise DataError(f"annotators per task must be at least 1 (got {annotators})")
    with catalog.session() as session:
        if session.get(DatasetVersion, dataset_version_id) is None:
            raise NotFoundError(
                f"dataset version {dataset_version_id!r} is not in the catalog",
                hint="`genloop data ls` lists the dataset versions",
            )
        queued = set(
            session.scalars(
                select(AnnotationTask.record_id).where(
                    AnnotationTask.dataset_version_id == dataset_version_id
                )
            )
        )
        created = 0
        for record_id, suggestion in records:
            if record_id in queued:
                continue
            queued.add(record_id)
            session.add(
                AnnotationTask(
                    dataset_version_id=dataset_version_id,
                    record_id=record_id,
                    status="open",
                    suggested_label=suggestion.label if suggestion else None,
                    suggested_confidence=round(suggestion.confidence, 4) if suggestion else None,
                    annotators_required=annotators,
                )
            )
            created += 1
    return created


def _tasks_query(dataset_version_id: str | None) -> Select[AnnotationTask]:
    query = select(AnnotationTask).options(selectinload(AnnotationTask.annotations))
    if dataset_version_id is not None:
        query = query.where(AnnotationTask.dataset_version_id == dataset_version_id)
    return query.order_by(AnnotationTask.id)


def _check_name(annotator: str) -> str:
    name = annotator.strip()
    if not name or len(name) > MAX_NAME:
        raise DataError(f"annotator name must be 1 to {MAX_NAME} characters (got {annotator!r})")
    return name


def next_task(catalog: Catalog, annotator: str, *, dataset_version_id: str | None = None) -> TaskView | None:
    """The oldest open task `annotator` has not labelled yet, or None when there is none."""
    name = _check_name(annotator)
    with catalog.session() as session:
        query = _tasks_query(dataset_version_id).where(
            AnnotationTask.status == "open",
            ~AnnotationTask.annotations.any(Annotation.annotator == name),
        )
        task = session.scalars(query.limit(1)).first()
        return TaskView.of(task) if task else None


def get_task(catalog: Catalog, task_id: int) -> TaskView:
    with catalog.session() as session:
        return TaskView.of(_load(session, task_id))


def _load(session: Session, task_id: int) -> AnnotationTask:
    task = session.get(AnnotationTask, task_id, options=[selectinload(AnnotationTask.annotations)])
    if task is None:
        raise NotFoundError(
            f"no annotation task {task_id}", hint="`genloop annotations next --annotator NAME` gives one"
        )
    return task


def submit(catalog: Catalog, task_id: int, annotator: str, label: str) -> TaskView:
    """Record `annotator`'s `label` for a task (replacing their own earlier one).

    The task is done once `annotators_required` different people labelled it.
    """
    name = _check_name(annotator)
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise DataError(f"a label must be 1 to {MAX_LABEL} characters (got {label!r})")
    with catalog.session() as session:
        task = _load(session, task_id)
        mine = next((a for a in task.annotations if a.annotator == name), None)
        if mine is None:
            task.annotations.append(Annotation(annotator=name, label=label))
        else:
            mine.label = label
        if len(task.annotations) >= task.annotators_required:
            task.status = "done"
        session.flush()
        return TaskView.of(task)


def tasks(catalog: Catalog, *, dataset_version_id: str | None = None) -> list[TaskView]:
    with catalog.session() as session:
        return [TaskView.of(t) for t in session.scalars(_tasks_query(dataset_version_id))]


@dataclass(frozen=True)
class QueueCounts:
    dataset_version_id: str
    open: int
    done: int
    annotations: int


def queue_counts(catalog: Catalog) -> list[QueueCounts]:
    """Open/done tasks and annotations per dataset version."""
    with catalog.session() as session:
        status_rows = session.execute(
            select(AnnotationTask.dataset_version_id, AnnotationTask.status, func.count()).group_by(
                AnnotationTask.dataset_version_id, AnnotationTask.status
            )
        ).all()
        annotation_rows = session.execute(
            select(AnnotationTask.dataset_version_id, func.count(Annotation.id))
            .join(Annotation, Annotation.task_id == AnnotationTask.id)
            .group_by(AnnotationTask.dataset_version_id)
        ).all()
    counts: dict[str, dict[str, int]] = {}
    for version, status, n in status_rows:
        counts.setdefault(version, {"open": 0, "done": 0, "annotations": 0})[status] = n
    for version, n in annotation_rows:
        counts.setdefault(version, {"open": 0, "done": 0, "annotations": 0})["annotations"] = n
    return [QueueCounts(version, **c) for version, c in sorted(counts.items())]


@dataclass(frozen=True)
class PairAgreement:
    annotator_a: str
    annotator_b: str
    items: int
    kappa: float


@dataclass(frozen=True)
class AgreementReport:
    """Cohen's κ for every pair of annotators with common items; Fleiss' κ over equally-rated items."""

    items: int  # tasks with at least two labels
    annotators: list[str]
    pairs: list[PairAgreement]
    fleiss: float | None
    fleiss_items: int
    raters_per_item: int


def agreement(catalog: Catalog, *, dataset_version_id: str | None = None) -> AgreementReport:
    """Agreement over every task that at least two people labelled.

    Fleiss' κ needs the same number of ratings per item: it uses the items with the
    most common number of ratings (≥ 2) and says how many those were.
    """
    rated = [t.labels for t in tasks(catalog, dataset_version_id=dataset_version_id) if len(t.labels) >= 2]
    people = sorted({name for labels in rated for name in labels})
    pairs = []
    for a, b in combinations(people, 2):
        common = [labels for labels in rated if a in labels and b in labels]
        if common:
            kappa = cohen_kappa([c[a] for c in common], [c[b] for c in common])
            pairs.append(PairAgreement(a, b, len(common), kappa))
    sizes = [len(labels) for labels in rated]
    raters = max(set(sizes), key=lambda n: (sizes.count(n), n)) if sizes else 0
    equal = [list(labels.values()) for labels in rated if len(labels) == raters]
    fleiss = fleiss_kappa(equal) if equal else None
    return AgreementReport(len(rated), people, pairs, fleiss, len(equal), raters)

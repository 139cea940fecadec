"""Export the annotation queue to JSONL / Label Studio JSON, and import labelled files back.

Export writes one entry per task of a dataset version (the record's text, or its
image as a `data:image/png;base64,` URI, the auto-label suggestion and the labels
so far). Import reads labels from either format (file formats in `formats.py`) and
submits each as an annotation: to the record's task when one exists, or to a new
task when `dataset_version_id` is given and the record belongs to that version.
The whole file is checked before anything is written.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from genloop.catalog import Catalog
from genloop.data.annotate.formats import (
    LabelledItem,
    detect_format,
    read_labelled,
    write_jsonl,
    write_label_studio,
)
from genloop.data.annotate.queue import TaskView, enqueue, submit, tasks
from genloop.data.clean import distinct_values
from genloop.data.datasets import open_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError
from genloop.workspace import Workspace

FORMATS = ("jsonl", "label-studio")


def _item(record: Record, task: TaskView) -> LabelledItem:
    if record.modality == "text":
        text, image = record.payload.decode("utf-8", errors="replace"), None
    else:
        text, image = None, "data:image/png;base64," + base64.b64encode(record.payload).decode("ascii")
    suggestion = (task.suggested_label, task.suggested_confidence or 0.0) if task.suggested_label else None
    labels = tuple((label, who) for who, label in sorted(task.labels.items()))
    return LabelledItem(record.id, text, image, labels, suggestion)


def export_tasks(
    workspace: Workspace,
    catalog: Catalog,
    dataset_version_id: str,
    path: Path,
    *,
    fmt: str,
    status: str | None = None,
) -> int:
    """Write the tasks of a dataset version (only `open` or `done` ones if `status`); returns how many."""
    if fmt not in FORMATS:
        raise DataError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    dataset = open_dataset_version(workspace, catalog, dataset_version_id)
    wanted = {
        t.record_id: t
        for t in tasks(catalog, dataset_version_id=dataset.id)
        if status is None or t.status == status
    }
    records = {r.id: r for r in dataset.iter_records() if r.id in wanted}
    ordered = [t for t in wanted.values() if t.record_id in records]
    items = [_item(records[t.record_id], t) for t in ordered]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        return write_jsonl(items, path)
    return write_label_studio(items, path, task_ids=[t.id for t in ordered])


@dataclass(frozen=True)
class ImportResult:
    labels: int
    tasks_created: int
    skipped_without_label: int


def import_labels(
    catalog: Catalog,
    path: Path,
    *,
    workspace: Workspace | None = None,
    dataset_version_id: str | None = None,
    annotator: str = "import",
    fmt: str = "auto",
) -> ImportResult:
    """Submit every label in `path` as an annotation (entries without an annotator use `annotator`)."""
    items = read_labelled(path, fmt if fmt != "auto" else detect_format(path))
    by_record: dict[str, list[TaskView]] = {}  # without a version, a record may be queued in several
    for task in tasks(catalog, dataset_version_id=dataset_version_id):
        by_record.setdefault(task.record_id, []).append(task)
    labelled = [item for item in items if item.labels]
    missing = [item.id for item in labelled if item.id not in by_record]
    created = 0
    if missing:
        if dataset_version_id is None or workspace is None:
            raise DataError(
                f"{path}: {len(missing)} records have no annotation task, e.g. {missing[0]}",
                hint="pass --version V to queue them on the dataset version they belong to",
            )
        ids = distinct_values(open_dataset_version(workspace, catalog, dataset_version_id), "id")
        strangers = [rid for rid in missing if rid not in ids]
        if strangers:
            raise DataError(
                f"{path}: {len(strangers)} records are not in dataset version {dataset_version_id}, "
                f"e.g. {strangers[0]}",
                hint="import into the version the file was exported from (`genloop data ls`)",
            )
        created = enqueue(catalog, dataset_version_id, ((rid, None) for rid in dict.fromkeys(missing)))
        by_record = {t.record_id: [t] for t in tasks(catalog, dataset_version_id=dataset_version_id)}
    ambiguous = [item.id for item in labelled if len(by_record[item.id]) > 1]
    if ambiguous:
        raise DataError(
            f"{path}: record {ambiguous[0]} is queued in several dataset versions",
            hint="pass --version V to say which one",
        )
    count = 0
    for item in labelled:
        task = by_record[item.id][0]
        for label, who in item.labels:
            submit(catalog, task.id, who or annotator, label)
            count += 1
    return ImportResult(count, created, len(items) - len(labelled))

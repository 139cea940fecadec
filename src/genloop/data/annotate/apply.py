"""Merge finished human annotations into a new dataset version.

The tasks of the queue belong to the dataset version that was annotated (V, the
input of `annotate`). Applying them writes a new version of stage "annotate" whose
parent is V:

* its records are those of the newest annotate-stage child of V (the rule/auto
  labels already there are kept), or of V itself when it was never annotated;
* every record with a finished task gets the **majority** human label (a strict
  majority of the votes cast; a tie leaves the record as it was and is reported),
  with `meta["human_label"] = {"label", "votes", "annotators"}`;
* queued records that the annotate run had dropped for want of a label come back
  with their human label; records that still have no label are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.data.annotate.labels import natural_sorted
from genloop.data.annotate.queue import tasks
from genloop.data.datasets import DatasetHandle, open_dataset_version, write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError
from genloop.workspace import Workspace


def majority_label(labels: list[str]) -> tuple[str, int] | None:
    """(label, votes) when one label has more votes than any other, else None (a tie)."""
    ranked = Counter(labels).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0]


@dataclass(frozen=True)
class ApplyResult:
    dataset: DatasetHandle
    base_id: str
    applied: int
    ties: list[int]  # task ids whose votes were tied
    open_tasks: int
    unlabelled_left_out: int


def _newest_annotated_child(catalog: Catalog, version_id: str) -> str | None:
    with catalog.session() as session:
        return session.scalars(
            select(DatasetVersion.id)
            .where(DatasetVersion.parent_id == version_id, DatasetVersion.stage == "annotate")
            .order_by(DatasetVersion.created_at.desc())
            .limit(1)
        ).first()


def apply_annotations(
    workspace: Workspace, catalog: Catalog, dataset_version_id: str, *, shard_size: int = 2048
) -> ApplyResult:
    """Write V's records (via its newest annotated child) with the majority human labels merged in."""
    source = open_dataset_version(workspace, catalog, dataset_version_id)
    queued = tasks(catalog, dataset_version_id=source.id)
    human: dict[str, dict[str, object]] = {}
    ties = []
    for task in queued:
        if task.status != "done":
            continue
        winner = majority_label(list(task.labels.values()))
        if winner is None:
            ties.append(task.id)
            continue
        human[task.record_id] = {
            "label": winner[0],
            "votes": f"{winner[1]}/{len(task.labels)}",
            "annotators": sorted(task.labels),
        }
    if not human:
        open_count = sum(t.status == "open" for t in queued)
        raise DataError(
            f"dataset version {source.id} has no finished annotation task with a majority label "
            f"({len(queued)} tasks, {open_count} open, {len(ties)} tied)",
            hint="label tasks with `genloop annotations next` / `genloop annotations label` first",
        )
    base_id = _newest_annotated_child(catalog, source.id) or source.id
    base = source if base_id == source.id else open_dataset_version(workspace, catalog, base_id)
    left_out = 0
    labels: set[str] = set()

    def merged() -> Iterator[Record]:
        nonlocal left_out
        seen: set[str] = set()
        from_base = base.iter_records()
        missing = (r for r in source.iter_records() if r.id in human) if base is not source else iter(())
        for record in chain(from_base, missing):
            if record.id in seen:
                continue
            seen.add(record.id)
            vote = human.get(record.id)
            if vote is not None:
                record = record.with_changes(
                    label=str(vote["label"]), meta={**record.meta, "human_label": vote}
                )
            if not record.label:
                left_out += 1
                continue
            labels.add(record.label)
            yield record

    records = list(merged())  # classes go in the manifest, so they are counted first
    dataset = write_dataset_version(
        workspace,
        catalog,
        records,
        name=source.name,
        stage="annotate",
        parent_id=source.id,
        classes=natural_sorted(labels),
        shard_size=shard_size,
        extra={
            "human_labels": {"base": base_id, "applied": len(human), "ties": ties},
            "annotate": base.manifest.get("annotate"),
        },
    )
    open_tasks = sum(t.status == "open" for t in queued)
    return ApplyResult(dataset, base_id, len(human), ties, open_tasks, left_out)

"""The annotate stage: labels from the source (class sub-folders, MNIST digits), then rules and
auto-labels when configured (`assist.py`; unsure records go to the human queue).

Records without a label, or with one outside `[annotate].classes`, are dropped with
a reason. The class list written to the manifest is in natural order ("2" before
"10"), because models map classes to indices by their position in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genloop.catalog import Catalog
from genloop.config import AnnotateConfig
from genloop.data.annotate.assist import enqueue_unsure, plan_assist
from genloop.data.clean import distinct_values, write_stage_version
from genloop.data.datasets import DatasetHandle
from genloop.data.executors.local import LocalExecutor
from genloop.data.executors.resume import remove_work, resumable_run, work_directory
from genloop.data.pipeline import Executor, Step, StepOutput, check_each
from genloop.data.record import Record
from genloop.workspace import Workspace

SHOWN_CLASSES = 10


def natural_key(label: str) -> list[Any]:
    """Sort key that orders digit runs by value: "2" < "10", "img9" < "img10"."""
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", label)]


def natural_sorted(labels: Iterable[str]) -> list[str]:
    return sorted(labels, key=lambda label: (natural_key(label), label))


class RequireLabel:
    name = "require-label"
    parallel_safe = True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check)

    def check(self, record: Record) -> Record | str:
        return record if record.label else "no label: put the file in a class sub-folder"


class AllowedLabels:
    """Keep only records whose label is one of `classes` (each unknown label counted apart)."""

    name = "allowed-labels"
    parallel_safe = True

    def __init__(self, classes: Iterable[str]) -> None:
        self.classes = set(classes)
        shown = natural_sorted(self.classes)
        self.shown = ", ".join(shown[:SHOWN_CLASSES]) + (", ..." if len(shown) > SHOWN_CLASSES else "")

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check)

    def check(self, record: Record) -> Record | str:
        if record.label in self.classes:
            return record
        return f"unknown label {record.label!r} (allowed: {self.shown})"


@dataclass(frozen=True)
class AnnotateResult:
    dataset: DatasetHandle
    report: dict[str, Any]
    classes: list[str]


def annotate(
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    cfg: AnnotateConfig,
    *,
    executor: Executor | None = None,
    shard_size: int = 2048,
) -> AnnotateResult:
    """Label `dataset` into a new version of stage "annotate" whose parent is `dataset`."""
    assist = plan_assist(dataset, cfg)  # rules and auto-labels, before require-label
    steps: list[Step] = [*assist.steps, *([RequireLabel()] if cfg.require_labels else [])]
    if cfg.classes is not None:
        steps.append(AllowedLabels(cfg.classes))
    seen = {label for label in distinct_values(dataset, "label") if label} | assist.labels
    enqueue_unsure(catalog, dataset, assist, cfg)  # before writing: even if nothing is left, people can label
    classes = natural_sorted(seen if cfg.classes is None else seen & set(cfg.classes))
    work = work_directory(workspace, "annotate", dataset.id, cfg, steps)
    run = resumable_run(
        dataset.iter_records(),
        steps,
        executor or LocalExecutor(shard_size, workers=1),  # label checks are cheaper than a pool
        work,
        total=dataset.manifest["records"],
        description="annotate",
    )
    annotated, report = write_stage_version(
        workspace,
        catalog,
        dataset,
        run,
        stage="annotate",
        hint="put the files in one sub-folder per class, or change [annotate].classes in genloop.toml",
        classes=classes,
        extra={"annotate": cfg.model_dump(mode="json"), **assist.summary()},
        shard_size=shard_size,
    )
    remove_work(work)
    return AnnotateResult(annotated, report, classes)

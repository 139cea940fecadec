"""The clean stage: drop unusable records with a counted reason, normalise the rest.

Steps by modality, cheapest first (see `clean_steps`); exact dedup runs last so a
duplicate is reported only among records that are otherwise good, and "duplicate
of X" always points at a record that is in the cleaned dataset.

Identity: a record's id stays the content hash of the *original* file (lineage back
to what the user supplied) while its payload becomes the normalised form (PNG for
images, NFKC UTF-8 for text). Two files differing only in encoding therefore keep
different ids; near-duplicate dedup is where such pairs meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from genloop.catalog import Catalog
from genloop.config import CleanConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.executors.local import LocalExecutor
from genloop.data.pipeline import Executor, PipelineRun, Step, run_pipeline
from genloop.data.record import Record
from genloop.data.steps.dedup import ExactDuplicates
from genloop.data.steps.image import BlankImages, DecodeImages, ImageSizeGuard
from genloop.data.steps.text import DecodeText, NormalizeText, ShortTexts
from genloop.errors import DataError
from genloop.workspace import Workspace


@dataclass(frozen=True)
class CleanResult:
    dataset: DatasetHandle
    report: dict[str, Any]
    """{"kept": n, "dropped": {reason kind: {"count", "examples"}}, "steps": [...]} (also in the manifest)."""


def clean_steps(modalities: set[str], cfg: CleanConfig) -> list[Step]:
    steps: list[Step] = []
    if "image" in modalities:
        steps += [ImageSizeGuard(cfg.max_image_pixels), DecodeImages(), BlankImages(cfg.min_std)]
    if "text" in modalities:
        steps += [DecodeText(), NormalizeText(), ShortTexts(cfg.min_text_chars)]
    steps.append(ExactDuplicates())
    return steps


def distinct_values(dataset: DatasetHandle, column: str) -> set[Any]:
    """Distinct values of one column, reading only that column of each shard."""
    return {
        value
        for shard in dataset.shards()
        for value in pq.read_table(shard, columns=[column])[column].to_pylist()
    }


def write_stage_version(
    workspace: Workspace,
    catalog: Catalog,
    parent: DatasetHandle,
    run: PipelineRun,
    *,
    stage: str,
    hint: str,
    classes: list[str] | None,
    extra: dict[str, Any],
    shard_size: int,
) -> tuple[DatasetHandle, dict[str, Any]]:
    """Stream a pipeline's kept records into a version of `stage` (child of `parent`), with its report.

    Raises DataError, naming example files, when the pipeline keeps nothing (no empty
    version is written).
    """
    first = next(run.kept, None)
    if first is None:
        lines = [f"nothing left after {stage} of dataset {parent.id}: {run.report.summary()}"]
        for counted in run.report.dropped_by_kind().values():
            lines += [f"  {example}" for example in counted.examples[:3]]
        raise DataError("\n".join(lines), hint=hint)
    report: dict[str, Any] = {}

    def kept_then_report() -> Iterator[Record]:
        yield first
        yield from run.kept
        # The manifest is assembled after the last record, so the filled-in dict lands in it.
        report.update(run.report.as_dict())

    version = write_dataset_version(
        workspace,
        catalog,
        kept_then_report(),
        name=parent.name,
        stage=stage,
        parent_id=parent.id,
        report=report,
        classes=classes,
        shard_size=shard_size,
        extra={"modality": parent.manifest.get("modality"), **extra},
    )
    return version, report


def clean(
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    cfg: CleanConfig,
    *,
    executor: Executor | None = None,
    shard_size: int = 2048,
) -> CleanResult:
    """Clean `dataset` into a new version of stage "clean" whose parent is `dataset`."""
    steps = clean_steps(distinct_values(dataset, "modality"), cfg)
    run = run_pipeline(
        dataset.iter_records(),
        steps,
        executor or LocalExecutor(shard_size),
        total=dataset.manifest["records"],
        description="clean",
    )
    cleaned, report = write_stage_version(
        workspace,
        catalog,
        dataset,
        run,
        stage="clean",
        hint="fix or replace the files named above (or loosen [clean] in genloop.toml), then run again",
        classes=dataset.manifest.get("classes"),
        extra={"clean": cfg.model_dump(mode="json")},
        shard_size=shard_size,
    )
    return CleanResult(cleaned, report)

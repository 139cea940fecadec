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

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from genloop.catalog import Catalog
from genloop.config import CleanConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.dedup_index import update_dedup_index
from genloop.data.executors import stage_executor
from genloop.data.executors.resume import remove_work, resumable_run, work_directory
from genloop.data.near_text_index import update_near_text_index
from genloop.data.pipeline import Executor, PipelineRun, Step
from genloop.data.record import Record
from genloop.data.rejects import RejectsShard
from genloop.data.steps.dedup import ExactDuplicates
from genloop.data.steps.image import BlankImages, DecodeImages, ImageSizeGuard
from genloop.data.steps.image_near_dup import ImageNearDuplicates, ImagePhashes
from genloop.data.steps.image_normalize import NormalizeImages
from genloop.data.steps.incremental_dedup import with_earlier_versions
from genloop.data.steps.license_filter import LicenseFilter
from genloop.data.steps.music import music_steps
from genloop.data.steps.near_dup import near_duplicates
from genloop.data.steps.pii import RedactPii
from genloop.data.steps.text import DecodeText, NormalizeText, ShortTexts
from genloop.data.steps.text_quality import text_quality_steps
from genloop.errors import DataError
from genloop.workspace import Workspace


@dataclass(frozen=True)
class CleanResult:
    dataset: DatasetHandle
    report: dict[str, Any]
    """{"kept": n, "dropped": {reason kind: {"count", "examples"}}, "steps": [...]} (also in the manifest)."""

    @property
    def input_errors(self) -> int:
        """Records dropped because they were broken (undecodable, truncated, ...): exit status 3."""
        return int((self.report.get("input_errors") or {}).get("count", 0))


def clean_steps(modalities: set[str], cfg: CleanConfig) -> list[Step]:
    steps: list[Step] = [] if cfg.licenses is None else [LicenseFilter(cfg.licenses)]
    if "image" in modalities:
        steps += [ImageSizeGuard(cfg.max_image_pixels), DecodeImages()]
        steps += [NormalizeImages(mode=cfg.image.mode, max_side=cfg.image.max_side), BlankImages(cfg.min_std)]
        steps += [ImagePhashes()] if cfg.image.near_dup else []  # hashed in parallel, compared later
    if "text" in modalities:
        steps += [DecodeText(), NormalizeText(), *text_quality_steps(cfg.text)]
        steps += [*([RedactPii()] if cfg.pii else []), ShortTexts(cfg.min_text_chars)]
    if "music" in modalities:
        steps += music_steps(cfg.music)  # parse, length, optional key/tempo normalisation
    steps.append(ExactDuplicates())
    if "text" in modalities and cfg.text.near_dup:
        steps.append(near_duplicates(cfg.text))  # after exact dedup: only near (not exact) copies left
    if "image" in modalities and cfg.image.near_dup:
        steps.append(ImageNearDuplicates.from_config(cfg.image))  # likewise after exact dedup
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
    finish: Callable[[Path], dict[str, Any]] | None = None,
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
        finish=finish,
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
    steps = with_earlier_versions(workspace, dataset, cfg, steps)  # + dedup against earlier cleans
    rejects = RejectsShard(workspace.path("tmp", "rejects").parent) if cfg.write_rejects else None
    with rejects or nullcontext():
        work = work_directory(workspace, "clean", dataset.id, cfg, steps)
        run = resumable_run(
            dataset.iter_records(),
            steps,
            executor or stage_executor(cfg.executor, cfg.workers, shard_size),
            work,
            total=dataset.manifest["records"],
            description="clean",
            on_rejects=rejects.add if rejects else None,
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
            finish=rejects.attach if rejects else None,
        )
    remove_work(work)  # the version is written: its finished shards are no longer needed
    if cfg.incremental_dedup:  # only now that the version is complete: never index a half-written clean
        update_dedup_index(workspace, dataset, cleaned)
        if cfg.text.near_dup and "text" in distinct_values(cleaned, "modality"):
            update_near_text_index(workspace, dataset, cleaned, cfg.text)
    return CleanResult(cleaned, report)

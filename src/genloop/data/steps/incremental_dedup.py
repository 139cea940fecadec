"""Drop records that an earlier clean of the same dataset already kept (exact or near image).

The step only reads the index (`dedup_index.EarlierRecords`); `clean` updates it
after the new version is written. Reasons name the old record, its dataset version
and where it came from, so a user can see *which* earlier data a new file repeats::

    exact duplicate of 3f2a9c01d4e5 (data/a.png) in earlier dataset version 0a1b2c3d4e5f6a7b
    near-duplicate image (phash distance 2) of 3f2a9c01d4e5 (data/a.png) in earlier dataset version ...

The step is stateless but holds the whole earlier index, so it is not marked
parallel-safe (it would be pickled to every worker); it only compares hashes that
the parallel `ImagePhashes` step computed. It runs before the within-collection
dedup steps: a file that repeats old data is reported as such, and "duplicate of X"
from the later steps then always names a record that is in the new version.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from genloop.config import CleanConfig
from genloop.data.datasets import DatasetHandle
from genloop.data.dedup_index import DedupIndex, EarlierRecords, IndexedRecord
from genloop.data.phash import ImageHashes, with_phashes
from genloop.data.pipeline import Reason, Step, StepOutput
from genloop.data.record import Record
from genloop.workspace import Workspace

EXACT_KIND = "exact duplicate of an earlier version"
NEAR_KIND = "near-duplicate image of an earlier version"
DEDUP_STEP_MARKERS = ("dedup", "near-dup")


class EarlierVersionDuplicates:
    name = "incremental-dedup"

    def __init__(self, earlier: EarlierRecords, *, near: bool = True) -> None:
        self.earlier = earlier
        self.near = near
        self.matched: Counter[str] = Counter()  # earlier dataset version -> records it matched
        self._counters: dict[str, int] = {}  # the current batch's report counters

    def __call__(self, batch: list[Record]) -> StepOutput:
        hashes: list[ImageHashes | None] = [None] * len(batch)
        if self.near and len(self.earlier.near):
            batch, hashes = with_phashes(batch)
        output = StepOutput(kept=[])
        self._counters = output.counters
        for record, value in zip(batch, hashes, strict=True):
            reason = self._reason(record, value)
            if reason is None:
                output.kept.append(record)
            else:
                output.dropped.append((record, reason))
        return output

    def _reason(self, record: Record, phash: ImageHashes | None) -> Reason | None:
        old = self.earlier.exact.get(record.id)
        if old is not None:
            self._count(old)
            return Reason(f"exact duplicate of {_named(old)}", kind=EXACT_KIND)
        match = self.earlier.nearest_image(phash) if phash is not None else None
        if match is None:
            return None
        old, distance = match
        self._count(old)
        return Reason(f"near-duplicate image (phash distance {distance}) of {_named(old)}", kind=NEAR_KIND)

    def _count(self, old: IndexedRecord) -> None:
        self.matched[old.version] += 1
        key = f"matched dataset version {old.version}"
        self._counters[key] = self._counters.get(key, 0) + 1

    def stats(self) -> dict[str, Any]:
        return {
            "earlier_versions": self.earlier.versions,
            "earlier_records": len(self.earlier),
            "matched": dict(self.matched),
        }


def _named(old: IndexedRecord) -> str:
    return f"{old.id[:12]} ({old.where}) in earlier dataset version {old.version}"


def insert_before_dedup(steps: list[Step], step: Step) -> list[Step]:
    """`steps` with `step` placed before the first within-collection dedup step (or at the end)."""
    for i, existing in enumerate(steps):
        if any(marker in existing.name for marker in DEDUP_STEP_MARKERS):
            return [*steps[:i], step, *steps[i:]]
    return [*steps, step]


def with_earlier_versions(
    workspace: Workspace, dataset: DatasetHandle, cfg: CleanConfig, steps: list[Step]
) -> list[Step]:
    """`steps` plus the incremental dedup step against earlier cleans of `dataset.name`, if enabled."""
    if not cfg.incremental_dedup:
        return steps
    index = DedupIndex.load(workspace, dataset.name)
    earlier = index.earlier(
        dataset.id,
        max_distance=cfg.image.phash_max_distance,
        fine_max_distance=cfg.image.phash256_max_distance,
    )
    return insert_before_dedup(steps, EarlierVersionDuplicates(earlier, near=cfg.image.near_dup))

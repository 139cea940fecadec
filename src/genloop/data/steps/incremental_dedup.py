"""Drop records that an earlier clean of the same dataset already kept (exact, near image, near text).

The step only reads the index (`dedup_index.EarlierRecords`); `clean` updates it
after the new version is written. Reasons name the old record, its dataset version
and where it came from, so a user can see *which* earlier data a new file repeats::

    exact duplicate of 3f2a9c01d4e5 (data/a.png) in earlier dataset version 0a1b2c3d4e5f6a7b
    near-duplicate image (phash distance 2) of 3f2a9c01d4e5 (data/a.png) in earlier dataset version ...
    near-duplicate text (Jaccard≈0.91) of 77ab01c2d3e4 (quotes.jsonl:12) in earlier dataset version ...

The step is stateless but holds the whole earlier index, so it is not marked
parallel-safe (it would be pickled to every worker); it only compares hashes that
the parallel `ImagePhashes` step computed, and MinHashes the batch's texts (vectorised)
when earlier text signatures exist (`near_text_index.py`, `[clean.text].near_dup`).
It runs before the within-collection dedup steps: a file that repeats old data is
reported as such, and "duplicate of X" from the later steps then always names a
record that is in the new version.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from genloop.config import CleanConfig
from genloop.data.datasets import DatasetHandle
from genloop.data.dedup_index import DedupIndex, EarlierRecords, IndexedRecord
from genloop.data.near_text_index import EarlierTexts, earlier_texts
from genloop.data.phash import ImageHashes, with_phashes
from genloop.data.pipeline import Reason, Step, StepOutput
from genloop.data.record import Record
from genloop.workspace import Workspace

EXACT_KIND = "exact duplicate of an earlier version"
NEAR_KIND = "near-duplicate image of an earlier version"
NEAR_TEXT_KIND = "near-duplicate text of an earlier version"
DEDUP_STEP_MARKERS = ("dedup", "near-dup")


class EarlierVersionDuplicates:
    name = "incremental-dedup"

    def __init__(
        self, earlier: EarlierRecords, *, near: bool = True, texts: EarlierTexts | None = None
    ) -> None:
        self.earlier = earlier
        self.near = near
        self.texts = texts
        self.matched: Counter[str] = Counter()  # earlier dataset version -> records it matched
        self._counters: dict[str, int] = {}  # the current batch's report counters

    def __call__(self, batch: list[Record]) -> StepOutput:
        hashes: list[ImageHashes | None] = [None] * len(batch)
        if self.near and len(self.earlier.near):
            batch, hashes = with_phashes(batch)
        near_texts = self._near_texts(batch)
        output = StepOutput(kept=[])
        self._counters = output.counters
        for record, value in zip(batch, hashes, strict=True):
            reason = self._reason(record, value, near_texts.get(id(record)))
            if reason is None:
                output.kept.append(record)
            else:
                output.dropped.append((record, reason))
        return output

    def _near_texts(self, batch: list[Record]) -> dict[int, tuple[IndexedRecord, float]]:
        """id(record) → (earlier text it nearly duplicates, estimated Jaccard), for this batch's texts."""
        if self.texts is None:
            return {}
        texts = [r for r in batch if r.modality == "text" and r.id not in self.earlier.exact]
        signatures = self.texts.hasher.signatures([r.payload.decode("utf-8") for r in texts])
        matches = self.texts.nearest(signatures)
        return {id(r): match for r, match in zip(texts, matches, strict=True) if match is not None}

    def _reason(
        self, record: Record, phash: ImageHashes | None, near_text: tuple[IndexedRecord, float] | None = None
    ) -> Reason | None:
        old = self.earlier.exact.get(record.id)
        if old is not None:
            self._count(old)
            return Reason(f"exact duplicate of {_named(old)}", kind=EXACT_KIND)
        if near_text is not None:
            old, similarity = near_text
            self._count(old)
            return Reason(
                f"near-duplicate text (Jaccard≈{similarity:.2f}) of {_named(old)}", kind=NEAR_TEXT_KIND
            )
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
        texts = self.texts
        return {
            "earlier_versions": self.earlier.versions,
            "earlier_records": len(self.earlier),
            "earlier_texts": 0 if texts is None else len(texts),
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
    texts = earlier_texts(workspace, dataset, cfg.text) if cfg.text.near_dup else None
    step = EarlierVersionDuplicates(earlier, near=cfg.image.near_dup, texts=texts)
    return insert_before_dedup(steps, step)

"""Exact deduplication: records with the same id (the SHA-256 of the original bytes).

The step remembers every id it has kept, across batches, so the first occurrence
wins and each later copy is dropped with a reason naming the file it duplicates.
Memory: one short string per kept record (a few hundred MB for millions of
records). Near-duplicates (MinHash LSH, persisted index) are a separate step.
"""

from __future__ import annotations

from genloop.data.pipeline import Reason, StepOutput, check_each
from genloop.data.record import Record


class ExactDuplicates:
    name = "exact-dedup"

    def __init__(self) -> None:
        self.first_seen: dict[str, str] = {}  # record id -> where the first copy came from

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check)

    def check(self, record: Record) -> Record | str:
        first = self.first_seen.get(record.id)
        if first is not None:
            return Reason(f"exact duplicate of {record.id[:12]} ({first})", kind="exact duplicate")
        self.first_seen[record.id] = record.where
        return record

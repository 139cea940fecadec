"""The local executor: batches of `shard_size` records, one after another, in this process.

Memory is bounded by one batch. Stateful steps (exact dedup's set of seen ids)
work here because every batch passes through the same step objects in order; the
Ray executor will need a global pass for those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from genloop.data.pipeline import BatchResult
from genloop.data.record import Record
from genloop.progress import stage_progress


def batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class LocalExecutor:
    shard_size: int = 2048

    def run(
        self,
        records: Iterable[Record],
        process: Callable[[list[Record]], BatchResult],
        *,
        total: int | None = None,
        description: str = "clean",
    ) -> Iterator[BatchResult]:
        seen = kept = 0
        with stage_progress(description, total) as advance:
            for batch in batches(records, self.shard_size):
                result = process(batch)
                seen += len(batch)
                kept += len(result[0])
                advance(len(batch), kept=kept, dropped=seen - kept)
                yield result

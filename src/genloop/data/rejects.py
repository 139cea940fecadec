"""The rejects shard: dropped records, with the step and reason, kept beside a clean version.

A report can only say "3 blank images"; the rejects shard lets a person look at
them (the HTML report shows thumbnails from it) and lets a fix be re-run on exactly
the records that were dropped. Written only when `[clean].write_rejects = true`.

Dropped records arrive batch by batch while the kept records are still streaming
into the version being built, so they go to a Parquet file in a `.partial` folder
beside it (memory: one batch) and are moved into the version's staging folder just
before its manifest is written — the version directory appears complete, with its
rejects, in one rename, and a killed run leaves only a `.partial` folder behind, which
the next clean in the workspace removes (a live run holds a lock in its folder).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from genloop.data.datasets import DatasetHandle
from genloop.data.pipeline import Reason, Rejected, reason_kind
from genloop.data.record import RECORD_SCHEMA, Record, records_to_table, table_to_records
from genloop.storage import sha256_hex

REJECTS_FILE = "rejects/part-00000.parquet"
LOCK_FILE = ".lock"
REJECTS_SCHEMA = pa.schema(
    [
        *RECORD_SCHEMA,
        pa.field("step", pa.string(), nullable=False),  # the step that dropped it
        pa.field("reason", pa.string(), nullable=False),  # the full text, with the file it duplicates etc.
        pa.field("kind", pa.string(), nullable=False),  # what the report counts it under
    ]
)


def remove_stale_partials(parent: Path) -> list[Path]:
    """Delete rejects folders that killed runs left in `parent` (no process holds their lock)."""
    removed = []
    for folder in parent.glob(".rejects.*.partial"):
        lock = FileLock(str(folder / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a live run's folder
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            lock.release()
    return removed


def rejects_table(rejects: list[Rejected]) -> pa.Table:
    """`(step, record, reason)` triples as a table of REJECTS_SCHEMA (the kind kept beside the text)."""
    table = records_to_table(record for _, record, _ in rejects)
    steps = pa.array([step for step, _, _ in rejects], pa.string())
    reasons = pa.array([str(reason) for _, _, reason in rejects], pa.string())
    kinds = pa.array([reason_kind(reason) for _, _, reason in rejects], pa.string())
    table = table.append_column("step", steps).append_column("reason", reasons).append_column("kind", kinds)
    return table.cast(REJECTS_SCHEMA)


def rejects_from_table(table: pa.Table) -> list[Rejected]:
    """The inverse of `rejects_table`: reasons come back as `Reason`s counted under the same kind."""
    steps, reasons, kinds = (table.column(name).to_pylist() for name in ("step", "reason", "kind"))
    records = table_to_records(table.select(RECORD_SCHEMA.names))
    return [(steps[i], record, Reason(reasons[i], kind=kinds[i])) for i, record in enumerate(records)]


class RejectsShard:
    """Collects dropped records (`add`, per batch) and moves them into a version (`attach`).

    Use as a context manager: leaving it removes the temporary file whatever happened.
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.records = 0
        self._folder: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._lock: FileLock | None = None

    def __enter__(self) -> RejectsShard:
        self.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.parent)
        self._folder = Path(tempfile.mkdtemp(prefix=".rejects.", suffix=".partial", dir=self.parent))
        # Held while this run lives, so another run's clean-up never takes a live folder.
        self._lock = FileLock(str(self._folder / LOCK_FILE))
        self._lock.acquire(timeout=0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._close()
        if self._lock is not None:
            self._lock.release()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    @property
    def _file(self) -> Path:
        if self._folder is None:
            raise RuntimeError("RejectsShard is used outside its `with` block")
        return self._folder / "rejects.parquet"

    def add(self, rejects: list[Rejected]) -> None:
        """Append one batch of `(step, record, reason)` (what `run_pipeline(on_rejects=...)` passes)."""
        if not rejects:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file, REJECTS_SCHEMA, compression="zstd")
        self._writer.write_table(rejects_table(rejects))
        self.records += len(rejects)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def attach(self, version_folder: Path) -> dict[str, Any]:
        """Move the shard into `version_folder` (a staging folder); the manifest entries to add."""
        self._close()
        if self.records == 0:
            return {"rejects": {"file": None, "records": 0}}
        target = version_folder / REJECTS_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self._file, target)
        digest = sha256_hex(target.read_bytes())
        return {"rejects": {"file": REJECTS_FILE, "records": self.records, "sha256": digest}}


@dataclass(frozen=True)
class Reject:
    step: str
    record: Record
    reason: str
    kind: str


def iter_rejects(dataset: DatasetHandle) -> Iterator[Reject]:
    """Each record in `dataset`'s rejects shard, with its step and reason; none when it has none."""
    entry = dataset.manifest.get("rejects") or {}
    if not entry.get("file"):
        return
    path = dataset.path / entry["file"]
    if not path.is_file():
        return
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group)
        steps, reasons, kinds = (table.column(name).to_pylist() for name in ("step", "reason", "kind"))
        for i, record in enumerate(table_to_records(table.select(RECORD_SCHEMA.names))):
            yield Reject(steps[i], record, reasons[i], kinds[i])

"""The rejects shard: dropped records, with the step and reason, kept beside a clean version.

A report can only say "3 blank images"; the rejects shard lets a person look at
them (the HTML report shows thumbnails from it) and lets a fix be re-run on exactly
the records that were dropped. Written only when `[clean].write_rejects = true`.

Dropped records arrive batch by batch while the kept records are still streaming
into the version being built, so they go to a Parquet file in a `.partial` folder
beside it (memory: one batch) and are moved into the version's staging folder just
before its manifest is written — the version directory appears complete, with its
rejects, in one rename, and a killed run leaves only a `.partial` folder behind.
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

from genloop.data.datasets import DatasetHandle
from genloop.data.pipeline import Rejected, reason_kind
from genloop.data.record import RECORD_SCHEMA, Record, records_to_table, table_to_records
from genloop.storage import sha256_hex

REJECTS_FILE = "rejects/part-00000.parquet"
REJECTS_SCHEMA = pa.schema(
    [
        *RECORD_SCHEMA,
        pa.field("step", pa.string(), nullable=False),  # the step that dropped it
        pa.field("reason", pa.string(), nullable=False),  # the full text, with the file it duplicates etc.
        pa.field("kind", pa.string(), nullable=False),  # what the report counts it under
    ]
)


class RejectsShard:
    """Collects dropped records (`add`, per batch) and moves them into a version (`attach`).

    Use as a context manager: leaving it removes the temporary file whatever happened.
    """

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.records = 0
        self._folder: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> RejectsShard:
        self.parent.mkdir(parents=True, exist_ok=True)
        self._folder = Path(tempfile.mkdtemp(prefix=".rejects.", suffix=".partial", dir=self.parent))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._close()
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
        table = records_to_table(record for _, record, _ in rejects)
        steps = pa.array([step for step, _, _ in rejects], pa.string())
        reasons = pa.array([str(reason) for _, _, reason in rejects], pa.string())
        kinds = pa.array([reason_kind(reason) for _, _, reason in rejects], pa.string())
        table = (
            table.append_column("step", steps).append_column("reason", reasons).append_column("kind", kinds)
        )
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file, REJECTS_SCHEMA, compression="zstd")
        self._writer.write_table(table.cast(REJECTS_SCHEMA))
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

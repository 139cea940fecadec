"""Dataset versions: immutable, content-addressed sets of records with a manifest.

On disk (`.genloop/datasets/NAME/VERSION_ID/`)::

    part-00000.parquet ...   records in RECORD_SCHEMA, at most `shard_size` per shard
    manifest.json            id, name, stage, parent, counts, shard hashes, step report

The version id is a hash of the stage and of every record's (id, label, split), so
the same data produces the same version and nothing is stored twice. The directory
is built under a temporary name and renamed into place: a version directory that
exists is complete. Each version is also a catalog row, with its sources/licenses.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetSource, DatasetVersion
from genloop.data.record import Record, records_to_table, table_to_records
from genloop.errors import NotFoundError
from genloop.storage import (
    atomic_write_json,
    commit_directory,
    remove_partials,
    sha256_hex,
    staging_directory,
)
from genloop.workspace import Workspace

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class DatasetHandle:
    """A dataset version on disk: its manifest, and its records read shard by shard."""

    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.get("classes") or [])

    def shards(self) -> list[Path]:
        return [self.path / shard["file"] for shard in self.manifest["shards"]]

    def iter_tables(self) -> Iterator[pa.Table]:
        for shard in self.shards():
            yield pq.read_table(shard)

    def iter_records(self, split: str | None = None) -> Iterator[Record]:
        for table in self.iter_tables():
            for record in table_to_records(table):
                if split is None or record.split == split:
                    yield record

    def records(self, split: str | None = None) -> list[Record]:
        return list(self.iter_records(split))


class _Counts:
    """Records per label, split and (source, license), kept as running counters so that
    writing a version holds one shard in memory, not one entry per record."""

    def __init__(self) -> None:
        self.labels: Counter[str] = Counter()
        self.splits: Counter[str] = Counter()
        self.sources: Counter[tuple[str, str]] = Counter()

    def add(self, record: Record) -> None:
        self.labels[record.label if record.label is not None else "(none)"] += 1
        self.splits[record.split] += 1
        self.sources[(record.source, record.license)] += 1

    @property
    def total(self) -> int:
        return sum(self.splits.values())

    def manifest_entries(self) -> dict[str, Any]:
        return {
            "labels": dict(sorted(self.labels.items())),
            "splits": dict(sorted(self.splits.items())),
            "sources": [
                {"source": s, "license": lic, "records": n} for (s, lic), n in sorted(self.sources.items())
            ],
        }


def write_dataset_version(
    workspace: Workspace,
    catalog: Catalog,
    records: Iterable[Record],
    *,
    name: str,
    stage: str,
    parent_id: str | None = None,
    report: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    shard_size: int = 2048,
    extra: dict[str, Any] | None = None,
    finish: Callable[[Path], dict[str, Any]] | None = None,
) -> DatasetHandle:
    """Write `records` (streamed; memory bounded by `shard_size`) as a new dataset version.

    `finish`, when given, is called with the staging folder after the last record: it may add
    files there (the rejects shard) and returns entries for the manifest.
    """
    datasets_root = workspace.path("datasets", name, "x").parent
    remove_partials(datasets_root)
    identity = hashlib.sha256(f"{name}\n{stage}\n".encode())
    counts = _Counts()
    shards: list[dict[str, Any]] = []
    with staging_directory(datasets_root, "version") as staging:
        batch: list[Record] = []

        def flush() -> None:
            table = records_to_table(batch)
            file = f"part-{len(shards):05d}.parquet"
            pq.write_table(table, staging / file, compression="zstd")
            shards.append(
                {"file": file, "records": len(batch), "sha256": sha256_hex((staging / file).read_bytes())}
            )
            batch.clear()

        for record in records:
            identity.update(f"{record.id}\t{record.label}\t{record.split}\n".encode())
            counts.add(record)
            batch.append(record)
            if len(batch) >= shard_size:
                flush()
        if batch or not shards:
            flush()
        version_id = identity.hexdigest()[:16]
        manifest = {
            "id": version_id,
            "name": name,
            "stage": stage,
            "parent": parent_id,
            "records": counts.total,
            "classes": classes,
            "shards": shards,
            "report": report or {},
            **counts.manifest_entries(),
            **(extra or {}),
            **(finish(staging) if finish else {}),
        }
        atomic_write_json(staging / MANIFEST, manifest)
        final = datasets_root / version_id
        commit_directory(staging, final, replace=False)
    _register(catalog, manifest, final)
    return DatasetHandle(version_id, final, manifest)


def _register(catalog: Catalog, manifest: dict[str, Any], path: Path) -> None:
    with catalog.session() as session:
        if session.get(DatasetVersion, manifest["id"]) is not None:
            return
        row = DatasetVersion(
            id=manifest["id"],
            name=manifest["name"],
            stage=manifest["stage"],
            parent_id=manifest["parent"],
            path=str(path),
            record_count=manifest["records"],
            manifest=manifest,
        )
        row.sources = [
            DatasetSource(source=s["source"], license=s["license"], record_count=s["records"])
            for s in manifest["sources"]
        ]
        session.add(row)


def open_dataset_version(workspace: Workspace, catalog: Catalog, version_id: str) -> DatasetHandle:
    with catalog.session() as session:
        row = session.get(DatasetVersion, version_id)
        if row is None:
            raise NotFoundError(
                f"dataset version {version_id!r} is not in the catalog",
                hint="`genloop data ls` lists the dataset versions",
            )
        path = Path(row.path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise NotFoundError(f"dataset version {version_id}: {manifest_path} is missing")
    return DatasetHandle(version_id, path, json.loads(manifest_path.read_text(encoding="utf-8")))

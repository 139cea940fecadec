"""The incremental dedup index: every record earlier clean runs of a dataset kept.

Without it a new collection is deduplicated only against itself, and the same photo
collected again next month enters the training data twice. The index lives at
`.genloop/dedup/NAME/index.parquet`, one row per kept record of every cleaned
version of dataset NAME::

    id          record id (SHA-256 of the original file): exact duplicates
    phash       64-bit pHash of an image (null for text): near-duplicate candidates
    phash256    256-bit pHash (64 hex digits) that confirms a candidate
    version     the clean dataset version that kept it: named in drop reasons
    collection  the dataset version that was cleaned (usually a "collect" version)
    order       when that collection was first indexed (0, 1, 2, ...)
    where       the record's file path or source, for drop reasons

The rule that makes re-cleaning safe: a collection is deduplicated only against
collections indexed *before* it (smaller `order`). Cleaning a new collection gets
the next order, so it is checked against everything earlier; cleaning a collection
that is already indexed (the same input again, or with a different config) keeps its
order, ignores its own rows and those of later collections, and so keeps the same
records as before. Collections are named by their dataset version id, which is
content addressed: collecting the very same files again (even from another folder)
gives the same collection, and cleaning it is a re-clean, not a new collection.
The index is updated only after the clean version is written, by replacing that
collection's rows in one atomic file write: a killed run leaves the previous index,
and re-running it does the update.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genloop.data.datasets import DatasetHandle
from genloop.data.near_image_index import NearImageIndex
from genloop.data.phash import META_COARSE, META_FINE, ImageHashes, hash_hex, with_phashes
from genloop.data.record import RECORD_SCHEMA, Record, table_to_records
from genloop.errors import DataError
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

INDEX_FILE = "index.parquet"
INDEX_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("phash", pa.uint64()),
        pa.field("phash256", pa.string()),
        pa.field("version", pa.string(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
        pa.field("order", pa.int32(), nullable=False),
        pa.field("where", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    """A record an earlier clean kept: what a drop reason names."""

    id: str
    version: str
    where: str


@dataclass
class EarlierRecords:
    """The records of collections indexed before the one being cleaned, ready for lookups."""

    max_distance: int
    fine_max_distance: int | None = None
    exact: dict[str, IndexedRecord] = field(default_factory=dict)
    near: NearImageIndex[IndexedRecord] = field(init=False)
    versions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.near = NearImageIndex(self.max_distance, self.fine_max_distance)

    def __len__(self) -> int:
        return len(self.exact)

    def nearest_image(self, hashes: ImageHashes) -> tuple[IndexedRecord, int] | None:
        match = self.near.nearest(hashes)
        return None if match is None else (self.near.items[match[0]], match[1])


def _index_folder(workspace: Workspace, name: str) -> Path:
    return workspace.path("dedup", name, INDEX_FILE).parent


class DedupIndex:
    """The persisted index of one dataset name (see the module docstring for the rule)."""

    def __init__(self, folder: Path, table: pa.Table) -> None:
        self.folder = folder
        self.table = table

    @classmethod
    def load(cls, workspace: Workspace, name: str) -> DedupIndex:
        folder = _index_folder(workspace, name)
        path = folder / INDEX_FILE
        if not path.is_file():
            return cls(folder, INDEX_SCHEMA.empty_table())
        try:
            table = pq.read_table(path).cast(INDEX_SCHEMA)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise DataError(
                f"{path}: the incremental dedup index cannot be read ({exc})",
                hint=f"delete {folder} to start a new index (earlier versions are then not deduplicated "
                "against), or set `incremental_dedup = false` under [clean] in genloop.toml",
            ) from None
        return cls(folder, table)

    @property
    def path(self) -> Path:
        return self.folder / INDEX_FILE

    def order_of(self, collection: str) -> int:
        """The collection's order: the one it was indexed with, else the next free one."""
        mine = self.table.filter(pc.equal(self.table["collection"], collection))
        if mine.num_rows:
            return int(mine["order"][0].as_py())
        return int(pc.max(self.table["order"]).as_py() or 0) + 1 if self.table.num_rows else 0

    def earlier(
        self, collection: str, *, max_distance: int, fine_max_distance: int | None = None
    ) -> EarlierRecords:
        """Records of collections indexed before `collection`, first-indexed first."""
        earlier = EarlierRecords(max_distance, fine_max_distance)
        rows = self.table.filter(pc.less(self.table["order"], self.order_of(collection)))
        rows = rows.sort_by([("order", "ascending")])
        for row in rows.to_pylist():
            record = IndexedRecord(row["id"], row["version"], row["where"])
            earlier.exact.setdefault(record.id, record)
            if row["phash"] is not None and row["phash256"] is not None:
                earlier.near.add(ImageHashes(int(row["phash"]), int(row["phash256"], 16)), record)
            if record.version not in earlier.versions:
                earlier.versions.append(record.version)
        return earlier

    def with_version(self, collection: str, cleaned: DatasetHandle) -> DedupIndex:
        """A new index in which `collection`'s rows are the records of its clean version `cleaned`."""
        order = self.order_of(collection)
        others = self.table.filter(pc.not_equal(self.table["collection"], collection))
        rows = pa.Table.from_batches(list(_index_rows(cleaned, collection, order)), schema=INDEX_SCHEMA)
        return DedupIndex(self.folder, pa.concat_tables([others, rows]))

    def save(self) -> None:
        """Write the whole index as one file, atomically (a reader sees the old or the new one)."""
        buffer = io.BytesIO()
        pq.write_table(self.table, buffer, compression="zstd")
        atomic_write_bytes(self.path, buffer.getvalue())


def _shard_hashes(shard: Path) -> tuple[list[Record], list[ImageHashes | None]]:
    """The records of one shard with their hashes, reading images only if some lack hashes.

    A clean with near-dup on has stored both hashes in `meta`, so the index update
    reads the small columns, not the images (their records come back without payload).
    """
    columns = [name for name in RECORD_SCHEMA.names if name != "payload"]
    light = pq.read_table(shard, columns=columns)
    light = light.append_column("payload", pa.array([b""] * light.num_rows, pa.large_binary()))
    records = list(table_to_records(light))
    hashes: list[ImageHashes | None] = []
    for record in records:
        coarse, fine = record.meta.get(META_COARSE), record.meta.get(META_FINE)
        if record.modality != "image":
            hashes.append(None)
        elif isinstance(coarse, str) and isinstance(fine, str):
            hashes.append(ImageHashes(int(coarse, 16), int(fine, 16)))
        else:  # cleaned with near-dup off: hash the images now
            return with_phashes(list(table_to_records(pq.read_table(shard))))
    return records, hashes


def _index_rows(cleaned: DatasetHandle, collection: str, order: int) -> Iterator[pa.RecordBatch]:
    """Index rows of every record of `cleaned`, shard by shard."""
    for shard in cleaned.shards():
        records, hashes = _shard_hashes(shard)
        yield pa.RecordBatch.from_pydict(
            {
                "id": [r.id for r in records],
                "phash": [h.coarse if h else None for h in hashes],
                "phash256": [hash_hex(h.fine, 256) if h else None for h in hashes],
                "version": [cleaned.id] * len(records),
                "collection": [collection] * len(records),
                "order": [order] * len(records),
                "where": [r.where for r in records],
            },
            schema=INDEX_SCHEMA,
        )


def update_dedup_index(workspace: Workspace, collection: DatasetHandle, cleaned: DatasetHandle) -> DedupIndex:
    """After a clean: record what `cleaned` kept as the rows of `collection` (under a lock)."""
    with workspace.lock(f"dedup-{cleaned.name}", timeout=60.0):
        index = DedupIndex.load(workspace, cleaned.name).with_version(collection.id, cleaned)
        index.save()
    return index

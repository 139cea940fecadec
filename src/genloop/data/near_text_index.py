"""The incremental near-duplicate index for text: MinHash signatures of what earlier cleans kept.

The exact index (`dedup_index.py`) catches the very same file collected again; this
one catches the same text re-typed, re-punctuated or lightly edited in a later
collection. One file per cleaned collection, beside the exact index::

    .genloop/dedup/NAME/near-text/<collection id>.npz
        signatures  (N, K) uint32  MinHash of each kept text (normalised, as stored)
        ids, wheres (N,) str       the record and where it came from (named in drop reasons)
        version     ()  str        the clean dataset version that kept them
        settings    [shingle_size, num_perm, seed]   what made the signatures

Which files count follows the exact index's rule: a collection is compared only
with collections indexed before it (smaller `order` in `index.parquet`), so
re-cleaning a collection keeps the same records. A file made with other shingle /
permutation settings cannot be compared and is skipped with a warning (re-clean that
collection to re-index it). Each file is replaced atomically after its clean
version is written, never during the run.

Memory: signatures are 4·K bytes per text (512 B at K = 128) plus the columnar LSH
buckets (`MinHashLSHIndex`, ~12 B per text and band).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from genloop.config import TextCleanConfig
from genloop.data.datasets import DatasetHandle
from genloop.data.dedup_index import DedupIndex, IndexedRecord
from genloop.data.steps.near_dup import MinHasher, MinHashLSHIndex
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

log = logging.getLogger(__name__)

FOLDER = "near-text"
HASH_BATCH = 2048


def _folder(workspace: Workspace, name: str) -> Path:
    return workspace.path("dedup", name, FOLDER, "x").parent


def _hasher(cfg: TextCleanConfig) -> MinHasher:
    return MinHasher(num_perm=cfg.num_perm, shingle_size=cfg.shingle_size, seed=cfg.seed)


def _settings(hasher: MinHasher) -> list[int]:
    return [hasher.shingle_size, hasher.num_perm, hasher.seed]


def update_near_text_index(
    workspace: Workspace, collection: DatasetHandle, cleaned: DatasetHandle, cfg: TextCleanConfig
) -> Path | None:
    """After a clean: write the signatures of `cleaned`'s texts as `collection`'s file (None: no texts)."""
    hasher = _hasher(cfg)
    signatures: list[np.ndarray] = []
    ids: list[str] = []
    wheres: list[str] = []
    batch: list[str] = []
    for record in cleaned.iter_records():
        if record.modality != "text":
            continue
        batch.append(record.payload.decode("utf-8"))
        ids.append(record.id)
        wheres.append(record.where)
        if len(batch) == HASH_BATCH:
            signatures.append(hasher.signatures(batch))
            batch = []
    if batch:
        signatures.append(hasher.signatures(batch))
    if not ids:
        return None
    buffer = io.BytesIO()
    np.savez(
        buffer,
        signatures=np.concatenate(signatures),
        ids=np.array(ids, dtype=str),
        wheres=np.array(wheres, dtype=str),
        version=np.array(cleaned.id),
        settings=np.array(_settings(hasher)),
    )
    path = _folder(workspace, cleaned.name) / f"{collection.id}.npz"
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass
class EarlierTexts:
    """Texts kept by cleans of collections indexed before this one, with their LSH index."""

    hasher: MinHasher
    index: MinHashLSHIndex
    versions: list[str] = field(default_factory=list)
    _version_of: list[int] = field(default_factory=list)  # per indexed text: index into `versions`

    def __len__(self) -> int:
        return len(self.index)

    def add(self, signatures: np.ndarray, ids: list[str], wheres: list[str], version: str) -> None:
        if version not in self.versions:
            self.versions.append(version)
        self._version_of += [self.versions.index(version)] * len(ids)
        self.index.extend(signatures, ids, wheres)

    def nearest(self, signatures: np.ndarray) -> list[tuple[IndexedRecord, float] | None]:
        """For each signature: the most similar earlier text at or above the threshold, or None."""
        if not len(self.index) or not len(signatures):
            return [None] * len(signatures)
        keys = self.index.band_keys(signatures)
        matches: list[tuple[IndexedRecord, float] | None] = []
        for signature, key, merged in zip(
            signatures, keys.tolist(), self.index.batch_candidates(keys), strict=True
        ):
            found = self.index.find(signature, key, merged)
            if found is None:
                matches.append(None)
                continue
            i, similarity = found
            old = IndexedRecord(self.index.ids[i], self.versions[self._version_of[i]], self.index.wheres[i])
            matches.append((old, similarity))
        return matches


def earlier_texts(workspace: Workspace, dataset: DatasetHandle, cfg: TextCleanConfig) -> EarlierTexts | None:
    """The texts of collections indexed before `dataset` (None when there are none)."""
    folder = _folder(workspace, dataset.name)
    files = sorted(folder.glob("*.npz"))
    if not files:
        return None
    table = DedupIndex.load(workspace, dataset.name).table
    mine = DedupIndex(folder, table).order_of(dataset.id)
    orders: dict[str, int] = {}
    for path in files:
        rows = table.filter(pc.equal(table["collection"], path.stem))
        if rows.num_rows:  # a file without index rows: its clean never finished indexing
            orders[path.stem] = int(rows["order"][0].as_py())
    hasher = _hasher(cfg)
    earlier = EarlierTexts(hasher, MinHashLSHIndex(threshold=cfg.near_dup_threshold, num_perm=cfg.num_perm))
    for collection, order in sorted(orders.items(), key=lambda item: item[1]):
        if order >= mine:
            continue
        path = folder / f"{collection}.npz"
        try:
            with np.load(path) as saved:
                if saved["settings"].tolist() != _settings(hasher):
                    log.warning(
                        "%s was indexed with other [clean.text] shingle_size/num_perm/seed: not compared "
                        "(clean that collection again to re-index it)",
                        path,
                    )
                    continue
                earlier.add(
                    saved["signatures"],
                    saved["ids"].tolist(),
                    saved["wheres"].tolist(),
                    str(saved["version"]),
                )
        except (KeyError, ValueError, OSError) as exc:
            log.warning("%s: unreadable near-duplicate text index (%s); delete it to re-index", path, exc)
    return earlier if len(earlier) else None

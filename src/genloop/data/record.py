"""The one record type that flows through every data step, and its Arrow schema.

A record is identified by the SHA-256 of its payload, so the same bytes collected
twice (from two folders, or two collections) get the same id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from genloop.storage import sha256_hex

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),  # image | text | music
        pa.field("payload", pa.large_binary(), nullable=False),  # PNG bytes, UTF-8 text, MIDI bytes
        pa.field("label", pa.string()),
        pa.field("source", pa.string(), nullable=False),  # e.g. "mnist-5k", "folder:data/images"
        pa.field("license", pa.string(), nullable=False),  # SPDX id or "unknown"
        pa.field("split", pa.string(), nullable=False),  # train | test
        pa.field("meta", pa.string(), nullable=False),  # JSON object: path, original size, ...
    ]
)


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    modality: str
    payload: bytes
    label: str | None
    source: str
    license: str
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        payload: bytes,
        *,
        modality: str,
        label: str | None,
        source: str,
        license: str,
        test_fraction: float = 0.0,
        meta: dict[str, Any] | None = None,
    ) -> Record:
        """A record whose id is the content hash and whose split is derived from it.

        The split comes from the hash (not a random draw), so re-collecting the same
        data puts every record in the same split again.
        """
        digest = sha256_hex(payload)
        split = "test" if int(digest[:8], 16) / 0xFFFFFFFF < test_fraction else "train"
        return cls(digest, modality, payload, label, source, license, split, meta or {})

    def with_changes(self, **changes: Any) -> Record:
        return replace(self, **changes)

    @property
    def where(self) -> str:
        """Where the record came from, for messages: its file path when it has one."""
        return str(self.meta.get("path") or f"{self.source} record {self.id[:12]}")


def records_to_table(records: Iterable[Record]) -> pa.Table:
    rows = list(records)
    return pa.table(
        {
            "id": [r.id for r in rows],
            "modality": [r.modality for r in rows],
            "payload": [r.payload for r in rows],
            "label": [r.label for r in rows],
            "source": [r.source for r in rows],
            "license": [r.license for r in rows],
            "split": [r.split for r in rows],
            "meta": [json.dumps(r.meta, sort_keys=True, ensure_ascii=False) for r in rows],
        },
        schema=RECORD_SCHEMA,
    )


def table_to_records(table: pa.Table) -> Iterator[Record]:
    columns = {name: table.column(name).to_pylist() for name in RECORD_SCHEMA.names}
    for i in range(table.num_rows):
        yield Record(
            id=columns["id"][i],
            modality=columns["modality"][i],
            payload=columns["payload"][i],
            label=columns["label"][i],
            source=columns["source"][i],
            license=columns["license"][i],
            split=columns["split"][i],
            meta=json.loads(columns["meta"][i]),
        )

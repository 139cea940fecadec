"""`table`: the user's CSV / TSV / JSONL / Parquet files, one record per row.

    [collect]
    source = "table"
    path = "data/tickets.csv"            # a file, or a folder of tables
    columns = { text = "body", label = "category", id = "ticket_id" }

A column mapping says which column is the payload (`text`, or `image`: a path
relative to the table's folder, or bytes in Parquet) and, optionally, `label`, `id`
(kept as meta `source_id`; the record id stays the content hash) and `license`
(per-row license; default [collect].license). Every other column goes into meta, so
nothing the user had is lost. Rows are streamed; each bad row or file is one problem
message with its path and line (or Parquet row), and every good row is kept.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.folder import _display_path, _walk, human_bytes
from genloop.data.sources.registry import register_source
from genloop.data.sources.table_lines import (
    SAMPLE_BYTES,
    FileProblems,
    FileRefused,
    detect_encoding,
    nothing_usable,
    reading_file,
)
from genloop.data.sources.table_rows import Row, csv_rows, jsonl_rows, parquet_rows
from genloop.errors import ConfigError, DataError
from genloop.workspace import Workspace

FIELDS = ("text", "image", "label", "id", "license")
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class ColumnMapping:
    payload_field: str  # "text" | "image"
    columns: dict[str, str]  # field -> column, payload included
    explicit: frozenset[str]  # fields the user mapped: their columns must exist

    @classmethod
    def from_config(cls, cfg: CollectConfig) -> ColumnMapping:
        given = dict(cfg.columns or {})
        unknown = sorted(set(given) - set(FIELDS))
        if unknown:
            raise ConfigError(
                f"[collect].columns: unknown field(s) {', '.join(unknown)}",
                hint=f"map only {', '.join(FIELDS)}; other columns are kept in meta automatically",
            )
        if "text" in given and "image" in given:
            raise ConfigError(
                "[collect].columns maps both text and image", hint="a record has one payload: keep one"
            )
        payload = "image" if "image" in given else "text" if "text" in given else cfg.modality
        columns = {payload: payload, "label": "label"} | given
        return cls(payload, columns, frozenset(given) | {payload})

    @property
    def required(self) -> dict[str, str]:
        return {field: self.columns[field] for field in FIELDS if field in self.explicit}

    def value(self, row: dict[str, Any], field: str) -> Any:
        column = self.columns.get(field)
        value = row.get(column) if column is not None else None
        return None if value == "" else value


def _table_files(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> list[Path]:
    if not cfg.path:
        raise ConfigError(
            "[collect].path is not set; the `table` source needs a CSV/TSV/JSONL/Parquet file or folder",
            hint='add `path = "data/tickets.csv"` under [collect] in genloop.toml',
        )
    root = workspace.resolve_user_path(cfg.path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(
            f"[collect].path {cfg.path} ({root}) does not exist",
            hint="point it at a .csv, .tsv, .jsonl or .parquet file, or a folder of them",
        )
    files: list[Path] = []
    others: list[Path] = []
    for path in _walk(root):
        (files if path.suffix.lower() in SUFFIX_FORMATS else others).append(path)
    if others:
        shown = ", ".join(_display_path(workspace, p) for p in others[:5])
        problems.append(f"skipped {len(others)} file(s) that are not tables: {shown}")
    return files


def _file_format(path: Path, cfg: CollectConfig) -> str:
    if cfg.format != "auto":
        return cfg.format
    try:
        return SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise FileRefused(
            f"cannot tell the format from the extension {path.suffix!r}; "
            "set [collect].format (csv, tsv, jsonl or parquet)"
        ) from None


def _encoding(cfg: CollectConfig, sample: bytes) -> str:
    if cfg.encoding is None:
        return detect_encoding(sample)
    try:
        name = codecs.lookup(cfg.encoding).name
    except LookupError:
        raise ConfigError(
            f"[collect].encoding {cfg.encoding!r} is not an encoding Python knows",
            hint="use e.g. utf-8, gbk, gb18030, or remove it to detect the encoding",
        ) from None
    # A BOM means UTF-8 whatever was set; keeping it would glue U+FEFF to the first column name.
    return "utf-8-sig" if name == "utf-8" and sample.startswith(codecs.BOM_UTF8) else name


def _rows(path: Path, cfg: CollectConfig, mapping: ColumnMapping, problems: FileProblems) -> Iterator[Row]:
    file_format = _file_format(path, cfg)
    if file_format == "parquet":
        yield from parquet_rows(path, required=mapping.required, problems=problems)
        return
    with path.open("rb") as handle:
        encoding = _encoding(cfg, handle.read(SAMPLE_BYTES))
        handle.seek(0)
        if file_format == "jsonl":
            yield from jsonl_rows(
                handle, encoding=encoding, max_line_bytes=cfg.max_line_bytes, problems=problems
            )
            return
        yield from csv_rows(
            handle,
            delimiter="\t" if file_format == "tsv" else ",",
            encoding=encoding,
            max_line_bytes=cfg.max_line_bytes,
            required=mapping.required,
            problems=problems,
        )


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return str(value)  # dates, decimals


def _image_bytes(value: Any, table: Path, cfg: CollectConfig) -> bytes:
    if isinstance(value, bytes):
        return value
    image = table.parent / str(value)
    try:
        size = image.stat().st_size
        if size > cfg.max_file_bytes:
            raise ValueError(f"image {value!r} is {human_bytes(size)}, over max_file_bytes")
        return image.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read image {value!r} ({exc.strerror or exc})") from None


def _record(row: Row, path: Path, shown: str, cfg: CollectConfig, mapping: ColumnMapping) -> Record:
    """The row as a record; ValueError/OSError with the reason when it has no usable payload."""
    number, values = row
    payload_value = mapping.value(values, mapping.payload_field)
    column = mapping.columns[mapping.payload_field]
    if payload_value is None:
        found = ", ".join(values) or "(none)"
        raise ValueError(f"no value in column {column!r} ({mapping.payload_field}); columns found: {found}")
    if mapping.payload_field == "image":
        payload = _image_bytes(payload_value, path, cfg)
    else:
        payload = payload_value if isinstance(payload_value, bytes) else str(payload_value).encode("utf-8")
    label, source_id, row_license = (mapping.value(values, f) for f in ("label", "id", "license"))
    mapped = {mapping.columns[f] for f in FIELDS if f in mapping.columns}
    position = "row" if _file_format(path, cfg) == "parquet" else "line"
    meta = {"path": shown, position: number}
    meta |= {key: _json_safe(value) for key, value in values.items() if key not in mapped}
    if source_id is not None:
        meta["source_id"] = _json_safe(source_id)
    return Record.create(
        payload,
        modality=mapping.payload_field,
        label=None if label is None else str(label),
        source=f"table:{cfg.path}",
        license=str(row_license or cfg.license or "unknown"),
        test_fraction=cfg.test_fraction,
        meta=meta,
    )


@register_source("table")
def table(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    mapping = ColumnMapping.from_config(cfg)
    yielded = 0
    for path in _table_files(workspace, cfg, problems):
        shown = _display_path(workspace, path)
        with reading_file(shown, problems) as file_problems:
            for row in _rows(path, cfg, mapping, file_problems):
                try:
                    record = _record(row, path, shown, cfg, mapping)
                except ValueError as exc:
                    file_problems.add(_where(row[0], path, cfg), f"{exc}; skipped")
                    continue
                yield record
                yielded += 1
                if cfg.limit is not None and yielded >= cfg.limit:
                    return
    if yielded == 0:
        raise nothing_usable(
            cfg.path,
            problems,
            hint="check [collect].columns against the columns listed above, and the file's format",
        )
    if cfg.license is None and mapping.columns.get("license") is None:
        problems.append(
            f"no [collect].license set: records from {cfg.path} are marked license 'unknown' unless "
            "a license column says otherwise; set it to the SPDX id of your data"
        )


def _where(number: int, path: Path, cfg: CollectConfig) -> str:
    return f"row {number}" if _file_format(path, cfg) == "parquet" else str(number)

"""Rows of a user's CSV / TSV / JSONL file, each with its line number, or a DataError that says where.

Shared by the apps: the ad-copy studio's product tables and past copy, the support app's tickets.

    read_rows(path, what="product table") → [(line, {column: value}), ...]

Bytes are decoded as the clean stage does (a BOM, else UTF-8, else GB18030); anything else is an
error naming the byte and its offset. CSV headers are matched case-insensitively with `-` and
spaces read as `_` ("Must-Include" → "must_include"); JSONL keys likewise. Line numbers are the
file's own (the CSV header is line 1), so a message points at the line to fix.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from genloop.data.steps.text import decode_text
from genloop.errors import DataError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv", ".tsv")


def column_key(name: object) -> str:
    """A header as genloop compares it: "  Must-Include " → "must_include"."""
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def read_text(path: Path, what: str) -> str:
    """The file's text; a DataError for a missing file or bytes in an unknown encoding."""
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"cannot read {what} {path}: {exc.strerror or exc}", hint="give an existing CSV or JSONL file"
        ) from None
    try:
        text, _encoding = decode_text(payload)
    except UnicodeDecodeError as exc:
        line = payload[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: unknown text encoding (not UTF-8 or GB18030; byte 0x{payload[exc.start]:02x} "
            f"at offset {exc.start}, line {line})",
            hint=f"save it as UTF-8, e.g. `iconv -f LATIN1 -t UTF-8 {path.name} > fixed{path.suffix}`",
        ) from None
    return text.removeprefix("\ufeff")


def _jsonl_rows(path: Path, text: str, example: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})",
                hint=f"one JSON object per line, e.g. {example}",
            ) from None
        if not isinstance(value, dict):
            raise DataError(
                f"{path}:{number}: a JSON {type(value).__name__}, not an object",
                hint=f"one JSON object per line, e.g. {example}",
            )
        rows.append((number, {column_key(key): item for key, item in value.items()}))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return []
        keys = [column_key(name) for name in header]
        rows = []
        for values in reader:
            if not any(value.strip() for value in values):
                continue  # a blank line
            if len(values) != len(keys):
                raise DataError(
                    f"{path}:{reader.line_num}: {len(values)} fields but the header has {len(keys)}",
                    hint="quote fields that contain the delimiter; list fields take `;` or `|` inside",
                )
            rows.append((reader.line_num, dict(zip(keys, values, strict=True))))
        return rows
    except csv.Error as exc:
        raise DataError(
            f"{path}:{reader.line_num}: broken CSV ({exc})", hint="check the quoting on that line"
        ) from None


def header_keys(path: Path, rows: list[tuple[int, dict[str, Any]]]) -> set[str]:
    """Every column named anywhere in the file."""
    return set().union(*(row.keys() for _, row in rows)) if rows else set()


def read_rows(path: Path, *, what: str, example: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a CSV/TSV/JSONL file; `example` shows one good JSONL line."""
    suffix = path.suffix.lower()
    if suffix not in (*JSONL_SUFFIXES, *CSV_SUFFIXES):
        raise DataError(
            f"{path}: unknown {what} file type {path.suffix or '(none)'!r}",
            hint="give a .csv, .tsv or .jsonl file",
        )
    text = read_text(path, what)
    return _jsonl_rows(path, text, example) if suffix in JSONL_SUFFIXES else _csv_rows(path, text)


def rows_from_text(text: str, source: Path, *, example: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a table sent as text: JSON lines when it starts with `{`, else CSV;
    `source` names it in messages."""
    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("{"):
        return _jsonl_rows(source, text, example)
    return _csv_rows(source, text)

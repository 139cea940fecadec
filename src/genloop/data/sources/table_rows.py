"""Rows of one table file as `(line or row number, {column: value})`, streamed.

CSV/TSV go through the csv module over a bounded line stream; JSONL is parsed line
by line; Parquet is read in record batches. A broken row is one problem message
(`path:line: reason`) and the rows after it still come; a file that cannot be used
at all (a mapped column missing from its header) raises FileRefused.

Recovering from a broken CSV record: an unbalanced quote makes the csv module swallow
every following line into one field. Strict parsing turns that into an error at the
end of the file (or when the record passes `max_line_bytes`); parsing then restarts
at the line after the one where the broken record began, so one stray quote costs
one row, not the rest of the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from genloop.data.sources.table_lines import FileProblems, FileRefused, LineReader, RecordTooLong

PARQUET_BATCH_ROWS = 1024
Row = tuple[int, dict[str, Any]]


def check_columns(found: list[str], required: dict[str, str]) -> None:
    """FileRefused naming the first mapped column (field -> column) that is not in `found`."""
    for field, column in required.items():
        if column not in found:
            raise FileRefused(
                f"no column {column!r} (mapped as {field}); columns found: {', '.join(found) or '(none)'}; "
                f'set [collect].columns, e.g. columns = {{ {field} = "{found[0] if found else column}" }}'
            )


def csv_rows(
    handle: BinaryIO,
    *,
    delimiter: str,
    encoding: str,
    max_line_bytes: int,
    required: dict[str, str],
    problems: FileProblems,
) -> Iterator[Row]:
    # The csv module refuses fields over 128 kB by default; our bound is max_line_bytes.
    csv.field_size_limit(max(csv.field_size_limit(), max_line_bytes))
    lines = LineReader(
        handle, encoding=encoding, max_line_bytes=max_line_bytes, problems=problems, multi_line_records=True
    )
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except (csv.Error, RecordTooLong) as exc:
        raise FileRefused(f"cannot read the header line ({exc})") from None
    if header is None:
        raise FileRefused("empty file (no header line)")
    header = [name.strip() for name in header]
    check_columns(header, required)
    while True:
        lines.record_start_line = None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (csv.Error, RecordTooLong) as exc:
            start = lines.record_start_line
            if start is None:  # cannot happen: an error needs a line; stop rather than loop
                problems.line(lines.number, f"{exc}; rest of file skipped")
                return
            problems.line(start, f"malformed CSV record ({_explain(exc, start, lines.number)}); skipped")
            handle.seek(lines.record_start_offset)
            lines.number = start - 1
            lines.skip_line()
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            continue
        if not fields or fields == [""]:
            continue  # blank line
        if len(fields) != len(header):
            problems.line(
                lines.record_start_line or lines.number,
                f"{len(fields)} field(s) where the header has {len(header)}; skipped",
            )
            continue
        yield lines.record_start_line or lines.number, dict(zip(header, fields, strict=True))


def _explain(exc: Exception, start: int, end: int) -> str:
    text = str(exc)
    if "unexpected end of data" in text:
        return "unbalanced quote: a quoted field never closes"
    if end > start:
        return f"{text} on line {end}; a quote opened on this line is probably unbalanced"
    return text


def jsonl_rows(
    handle: BinaryIO, *, encoding: str, max_line_bytes: int, problems: FileProblems
) -> Iterator[Row]:
    lines = LineReader(handle, encoding=encoding, max_line_bytes=max_line_bytes, problems=problems)
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.line(lines.number, f"not valid JSON ({exc.msg} at column {exc.colno}); skipped")
            continue
        if not isinstance(value, dict):
            problems.line(lines.number, f"expected a JSON object, got {type(value).__name__}; skipped")
            continue
        yield lines.number, value


def parquet_rows(path: Path, *, required: dict[str, str], problems: FileProblems) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table_file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileRefused(f"not a readable Parquet file ({exc})") from None
    check_columns(table_file.schema_arrow.names, required)
    row = 0
    try:
        for batch in table_file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for values in batch.to_pylist():
                row += 1
                yield row, values
    except (pa.ArrowException, OSError) as exc:
        problems.row(row + 1, f"cannot read the rest of the file ({exc}); rows from here skipped")

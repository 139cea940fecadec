"""Import an ad platform's export (rows of creative id → impressions, clicks, likes) as feedback events.

    genloop feedback import report.csv --map creative=Creative_ID,impressions=Impr,clicks=Clicks

The mapping names, for each target, the CSV column that holds it:

    creative      (required) a publication id, or a content item id with exactly one publication
    impressions   clicks   likes   dislikes     counts (at least one); empty or "-" means 0
    date          (optional) the day the counts are for (2025-11-03, 2025/11/03, 20251103)

Each count becomes that many events (a click is one event, as when it comes live), each
with its own pseudonymous viewer id `import:<file-hash>:<row>:<kind>:<n>` (a platform's
five likes come from five people), `meta = {"import": name, "row": n}` and the
idempotency key of the same form, so importing the same file again stores nothing new.

The whole file is checked before anything is stored: a malformed file (wrong delimiter,
missing column, a count that is not a whole number, a bad date) raises
`ImportFormatError` naming the row and column, and stores nothing. Creative ids the
catalog does not know are not errors of the file: those rows are skipped and listed
in the report (`unknown`), row by row.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from genloop.catalog import Catalog
from genloop.catalog.models import FeedbackEvent, Publication
from genloop.errors import GenloopError

COUNT_TARGETS = {"impressions": "impression", "clicks": "click", "likes": "like", "dislikes": "dislike"}
TARGETS = ("creative", *COUNT_TARGETS, "date")
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_EVENTS = 200_000
_CHUNK = 500
_INSERT_BATCH = 5_000


class ImportFormatError(GenloopError):
    """The file cannot be imported as it is (nothing was stored); the message names row and column."""


@dataclass(frozen=True)
class ImportRow:
    row: int
    """The row number as a spreadsheet shows it (the header is row 1)."""
    creative: str
    counts: dict[str, int]
    """event kind → count"""
    day: date | None


@dataclass(frozen=True)
class UnknownCreative:
    row: int
    creative: str
    reason: str


@dataclass
class ImportReport:
    file: str
    sha256: str
    rows: int
    events: int = 0
    """Events the known rows map to."""
    stored: int = 0
    already_stored: int = 0
    """Events a previous import of this file stored (skipped)."""
    by_kind: dict[str, int] = field(default_factory=dict)
    unknown: list[UnknownCreative] = field(default_factory=list)
    dry_run: bool = False


def parse_mapping(spec: str) -> dict[str, str]:
    """`"creative=Creative_ID,impressions=Impr"` → {"creative": "Creative_ID", "impressions": "Impr"}."""
    mapping: dict[str, str] = {}
    for part in (piece.strip() for piece in spec.split(",")):
        if not part:
            continue
        target, sep, column = (text.strip() for text in part.partition("="))
        if not sep or not column:
            raise ImportFormatError(
                f"mapping entry {part!r} is not TARGET=COLUMN",
                hint="e.g. --map creative=Creative_ID,clicks=Clicks",
            )
        if target not in TARGETS:
            raise ImportFormatError(
                f"unknown mapping target {target!r}", hint=f"targets: {', '.join(TARGETS)}"
            )
        mapping[target] = column
    if "creative" not in mapping:
        raise ImportFormatError(
            "the mapping needs creative=COLUMN (the column with the publication or content id)"
        )
    if not any(target in mapping for target in COUNT_TARGETS):
        raise ImportFormatError(
            "the mapping names no count column", hint=f"map at least one of: {', '.join(COUNT_TARGETS)}"
        )
    return mapping


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM), else GBK (Chinese Excel's default); anything else is an error."""
    if b"\x00" in data:
        raise ImportFormatError(
            "the file has NUL bytes: it is not a CSV text file (an .xlsx?)",
            hint="export or save it as CSV (UTF-8)",
        )
    for encoding in ("utf-8-sig", "gbk"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFormatError(
        "the file is neither UTF-8 nor GBK text", hint="save it as CSV UTF-8 and try again"
    )


def _count(value: str, row: int, column: str) -> int:
    cleaned = value.strip().replace(",", "").replace("_", "").replace(" ", "")
    if cleaned in {"", "-"}:
        return 0
    try:
        number = float(cleaned)
    except ValueError:
        number = float("nan")
    if not number == number or number != int(number) or number < 0:  # NaN, fractions, negatives
        raise ImportFormatError(
            f"row {row}, column {column!r}: {value!r} is not a count (a whole number ≥ 0)",
            hint="fix that cell, or map another column",
        )
    return int(number)


def _day(value: str, row: int, column: str) -> date:
    text = value.strip()
    for pattern in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ImportFormatError(f"row {row}, column {column!r}: {value!r} is not a date (YYYY-MM-DD)")


def parse_rows(text: str, mapping: dict[str, str], *, delimiter: str = ",") -> list[ImportRow]:
    """Every data row, checked; the first problem raises `ImportFormatError` (row and column named)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return _checked_rows(reader, mapping, delimiter)
    except csv.Error as error:  # a runaway quote, a field over csv's size limit, ...
        raise ImportFormatError(
            f"row {reader.line_num}: the CSV cannot be read ({error})",
            hint='check the quoting on that row (an unclosed " swallows the rest of the file)',
        ) from None


def _checked_rows(reader: Iterator[list[str]], mapping: dict[str, str], delimiter: str) -> list[ImportRow]:
    header = [name.strip() for name in next(reader, [])]
    if not any(header):
        raise ImportFormatError("the file is empty: a header row and data rows are needed")
    missing = [column for column in mapping.values() if column not in header]
    if missing:
        hint = f"the header has: {', '.join(header)}"
        if len(header) == 1 and any(other in header[0] for other in ";\t|"):
            hint = (
                f"the header is one column {header[0]!r}: is the file separated by something "
                f"other than {delimiter!r}? (pass --delimiter)"
            )
        raise ImportFormatError(
            f"column(s) {', '.join(map(repr, missing))} not in the file (row 1)", hint=hint
        )
    index = {target: header.index(column) for target, column in mapping.items()}
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise ImportFormatError(
                f"row {number} has {len(cells)} fields; the header has {len(header)}",
                hint=f"check the delimiter ({delimiter!r}) and quoting on that row",
            )
        creative = cells[index["creative"]].strip()
        if not creative:
            raise ImportFormatError(f"row {number}, column {mapping['creative']!r}: the creative id is empty")
        counts = {
            COUNT_TARGETS[target]: _count(cells[index[target]], number, mapping[target])
            for target in COUNT_TARGETS
            if target in index
        }
        day = _day(cells[index["date"]], number, mapping["date"]) if "date" in index else None
        rows.append(ImportRow(number, creative, counts, day))
    return rows


def _resolve(catalog: Catalog, creatives: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """creative id → publication id, and creative id → why it could not be resolved."""
    resolved: dict[str, str] = {}
    publications_of: dict[str, list[str]] = {}
    with catalog.session() as session:
        for start in range(0, len(creatives), _CHUNK):
            chunk = creatives[start : start + _CHUNK]
            for (pub_id,) in session.execute(select(Publication.id).where(Publication.id.in_(chunk))):
                resolved[pub_id] = pub_id
            query = select(Publication.content_item_id, Publication.id).where(
                Publication.content_item_id.in_(chunk)
            )
            for content_id, pub_id in session.execute(query):
                publications_of.setdefault(content_id, []).append(pub_id)
    problems: dict[str, str] = {}
    for creative in creatives:
        if creative in resolved:
            continue
        found = sorted(publications_of.get(creative, []))
        if len(found) == 1:
            resolved[creative] = found[0]
        elif found:
            problems[creative] = (
                f"content item with {len(found)} publications ({', '.join(found)}): use one of those ids"
            )
        else:
            problems[creative] = "neither a publication id nor a published content item id"
    return resolved, problems


def _events(
    rows: list[ImportRow], resolved: dict[str, str], file_hash: str, name: str
) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC)
    for item in rows:
        publication_id = resolved.get(item.creative)
        if publication_id is None:
            continue
        at = datetime(item.day.year, item.day.month, item.day.day, tzinfo=UTC) if item.day else now
        for kind, count in item.counts.items():
            for n in range(count):
                key = f"import:{file_hash}:{item.row}:{kind}:{n}"
                yield {
                    "publication_id": publication_id,
                    "kind": kind,
                    "viewer_id": key,
                    "idempotency_key": key,
                    "created_at": at,
                    "meta": {"import": name, "row": item.row},
                }


def import_feedback_csv(
    catalog: Catalog,
    data: bytes,
    *,
    name: str,
    mapping: dict[str, str] | str,
    delimiter: str = ",",
    dry_run: bool = False,
) -> ImportReport:
    """Check the whole file, then store its events in one transaction (see the module docstring)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFormatError(
            f"the file is {len(data)} bytes; the import limit is {MAX_IMPORT_BYTES}",
            hint="split it and import each part",
        )
    if len(delimiter) != 1:
        raise ImportFormatError(f"the delimiter must be one character (got {delimiter!r})")
    columns = parse_mapping(mapping) if isinstance(mapping, str) else mapping
    rows = parse_rows(decode_csv(data), columns, delimiter=delimiter)
    file_hash = hashlib.sha256(data).hexdigest()[:16]
    report = ImportReport(file=name, sha256=file_hash, rows=len(rows), dry_run=dry_run)
    resolved, problems = _resolve(catalog, sorted({row.creative for row in rows}))
    report.unknown = [
        UnknownCreative(row.row, row.creative, problems[row.creative])
        for row in rows
        if row.creative in problems
    ]
    known = [row for row in rows if row.creative in resolved]
    report.events = sum(sum(row.counts.values()) for row in known)
    if report.events > MAX_IMPORT_EVENTS:
        raise ImportFormatError(
            f"the file maps to {report.events} events; one import may store at most {MAX_IMPORT_EVENTS}",
            hint="split the file into parts (each part is idempotent on its own)",
        )
    report.by_kind = dict(Counter(kind for row in known for kind, n in row.counts.items() for _ in range(n)))
    if dry_run:
        return report
    for attempt in (1, 2):
        try:
            report.stored, report.already_stored = _store(
                catalog, _events(known, resolved, file_hash, name), file_hash
            )
            return report
        except IntegrityError:
            if attempt == 2:  # a concurrent import of the same file won twice: report what is there
                raise
    return report


def _store(catalog: Catalog, events: Iterator[dict[str, Any]], file_hash: str) -> tuple[int, int]:
    stored = already = 0
    with catalog.session() as session:
        existing = set(
            session.scalars(
                select(FeedbackEvent.idempotency_key).where(
                    FeedbackEvent.idempotency_key.like(f"import:{file_hash}:%")
                )
            )
        )
        batch: list[dict[str, Any]] = []
        for event in events:
            if event["idempotency_key"] in existing:
                already += 1
                continue
            batch.append(event)
            if len(batch) >= _INSERT_BATCH:
                session.execute(insert(FeedbackEvent), batch)
                stored += len(batch)
                batch = []
        if batch:
            session.execute(insert(FeedbackEvent), batch)
            stored += len(batch)
    return stored, already

"""Reading a text table line by line: bounded memory, detected encoding, per-line fallback.

A user's CSV may be UTF-8, UTF-8 with a BOM (Excel), or GBK/GB18030 (Chinese
Windows), may hold a 20 MB line or NUL bytes, and may mix encodings line by line
after someone concatenated two exports. Each of those is one problem message naming
the file and the line; the good lines around it still reach the caller.

Lines are read with `readline(max_line_bytes + 1)`, so a line longer than the bound
is recognised after reading at most that many bytes and skipped in small chunks:
memory never holds more than one bounded line.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from genloop.data.sources.folder import human_bytes
from genloop.errors import DataError

CANDIDATE_ENCODINGS = ("utf-8", "gbk", "gb18030")
"""Tried strictly, in this order, on a sample; GB18030 is a superset of GBK, so GBK goes first."""
SAMPLE_BYTES = 1 << 16
SKIP_CHUNK_BYTES = 1 << 16
MESSAGES_PER_FILE = 20
"""A file broken on every line gives this many messages plus a count, not a million lines."""


class FileRefused(Exception):
    """The whole file cannot be used (missing mapped column, not a table); the message says why."""


class RecordTooLong(Exception):
    """A CSV record (a quoted field spanning lines) grew past `max_line_bytes`."""


class FileProblems:
    """Problem messages of one file, `path:line: reason`, capped at MESSAGES_PER_FILE."""

    def __init__(self, shown: str, problems: list[str]) -> None:
        self.shown = shown
        self.problems = problems
        self.count = 0

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if self.count <= MESSAGES_PER_FILE:
            self.problems.append(f"{self.shown}:{where}: {reason}")

    def line(self, number: int, reason: str) -> None:
        self.add(str(number), reason)

    def row(self, number: int, reason: str) -> None:
        self.add(f"row {number}", reason)

    def finish(self) -> None:
        if self.count > MESSAGES_PER_FILE:
            self.problems.append(
                f"{self.shown}: {self.count - MESSAGES_PER_FILE} more problem(s) not shown "
                f"({self.count} in all)"
            )


def detect_encoding(sample: bytes) -> str:
    """The first candidate that decodes `sample` strictly; `utf-8-sig` when it starts with a BOM."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for encoding in CANDIDATE_ENCODINGS:
        # Incremental and not final: the sample may end in the middle of a character.
        decoder = codecs.getincrementaldecoder(encoding)("strict")
        try:
            decoder.decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    return "utf-8"  # nothing fits: every bad line falls back and is reported


class LineReader:
    """Decoded lines of a binary file (line endings kept, for the csv module).

    `number` is the 1-based number of the last line read. A caller parsing
    multi-line records (`multi_line_records=True`) sets `record_start_line = None`
    before each record; the reader then notes where the record's first line began (`record_start_offset`) and
    raises RecordTooLong when a record spans lines and grows past the bound.
    """

    def __init__(
        self,
        handle: BinaryIO,
        *,
        encoding: str,
        max_line_bytes: int,
        problems: FileProblems,
        multi_line_records: bool = False,
    ) -> None:
        self.handle = handle
        self.multi_line_records = multi_line_records
        self.encoding = encoding
        self.max_line_bytes = max_line_bytes
        self.problems = problems
        self.number = 0
        self.record_start_line: int | None = None
        self.record_start_offset = 0

    def __iter__(self) -> Iterator[str]:
        while True:
            offset = self.handle.tell()
            raw = self.handle.readline(self.max_line_bytes + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > self.max_line_bytes and not raw.endswith(b"\n"):
                total = len(raw) + self._skip_rest_of_line()
                self.problems.line(
                    self.number,
                    f"line of {human_bytes(total)} exceeds max_line_bytes "
                    f"({human_bytes(self.max_line_bytes)}); skipped without reading it",
                )
                continue
            if b"\x00" in raw:
                self.problems.line(self.number, "contains NUL bytes (binary data, or UTF-16?); skipped")
                continue
            if not self.multi_line_records:
                pass
            elif self.record_start_line is None:
                self.record_start_line, self.record_start_offset = self.number, offset
            elif self.handle.tell() - self.record_start_offset > self.max_line_bytes:
                raise RecordTooLong(
                    f"record starting here spans more than {human_bytes(self.max_line_bytes)}"
                )
            yield self.decode(raw)

    def skip_line(self) -> None:
        """Step over one line (bounded), e.g. the first line of a broken CSV record."""
        raw = self.handle.readline(self.max_line_bytes + 1)
        if raw and len(raw) > self.max_line_bytes and not raw.endswith(b"\n"):
            self._skip_rest_of_line()
        self.number += 1

    def _skip_rest_of_line(self) -> int:
        skipped = 0
        while chunk := self.handle.readline(SKIP_CHUNK_BYTES):
            skipped += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped

    def decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError as exc:
            for other in CANDIDATE_ENCODINGS:
                if other != self.encoding.removesuffix("-sig"):
                    try:
                        text = raw.decode(other)
                    except UnicodeDecodeError:
                        continue
                    self.problems.line(self.number, f"not valid {self.encoding}; decoded as {other}")
                    return text
            self.problems.line(
                self.number,
                f"not valid {self.encoding} (byte {exc.start}: {exc.reason}); "
                "undecodable bytes replaced by U+FFFD; set [collect].encoding if the file has another one",
            )
            return raw.decode(self.encoding, errors="replace")


@contextmanager
def reading_file(shown: str, problems: list[str]) -> Iterator[FileProblems]:
    """Problems of one table file or shard; a refused or unreadable file is reported and skipped.

    Used around the rows of each file, so one bad file never stops a collection.
    """
    file_problems = FileProblems(shown, problems)
    try:
        yield file_problems
    except FileRefused as exc:
        problems.append(f"{shown}: {exc}; file skipped")
    except OSError as exc:
        problems.append(f"{shown}: cannot read ({exc.strerror or exc}); file skipped")
    finally:
        file_problems.finish()


def nothing_usable(location: object, problems: list[str], *, hint: str) -> DataError:
    """The error for a collection that kept no row, listing every problem met on the way."""
    details = "".join(f"\n  {problem}" for problem in problems)
    return DataError(f"no usable rows in {location}{details}", hint=hint)

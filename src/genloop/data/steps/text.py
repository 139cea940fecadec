"""Text checks: decode to UTF-8, normalise Unicode and whitespace, drop too-short texts.

After these steps every text payload is UTF-8 without a BOM, in NFKC form, with
`\\n` line ends. NFKC folds compatibility characters (full-width Latin letters and
digits, ligatures, full-width punctuation such as `，` -> `,`), so the same words
typed two ways become the same text; it is the normalisation most text pipelines
use before deduplication and tokenisation.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from genloop.data.pipeline import StepOutput, check_each
from genloop.data.record import Record

# Checked in order; a BOM is unambiguous, so it wins over guessing.
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # UTF-16 text is full of NUL bytes
# Chinese files from Windows tools are often GBK/GB2312; GB18030 is their superset.
FALLBACK_ENCODING = "gb18030"

# C0 controls other than tab/newline, DEL, and stray BOMs (U+FEFF inside text is never wanted).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace other than newline
_BLANK_LINES = re.compile(r"\n{3,}")


def decode_text(payload: bytes) -> tuple[str, str]:
    """(text, encoding): a BOM's encoding, else UTF-8, else GB18030; UnicodeDecodeError if none fits."""
    for bom, encoding in BOMS:
        if payload.startswith(bom):
            return payload.decode(encoding), encoding
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return payload.decode(FALLBACK_ENCODING), FALLBACK_ENCODING
        except UnicodeDecodeError:
            raise utf8_error from None


def normalize_text(text: str) -> str:
    """NFKC, `\\n` line ends, runs of spaces/tabs collapsed, at most one blank line in a row, trimmed."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class DecodeText:
    """Drop files that are not text; store the rest as UTF-8 and note a non-UTF-8 source encoding."""

    name = "decode-text"
    parallel_safe = True
    drops_input_errors = True  # broken input, not a judgement: see genloop.data.pipeline

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="text")

    def check(self, record: Record) -> Record | str:
        if not record.payload:
            return "empty file (0 bytes)"
        if b"\x00" in record.payload and not record.payload.startswith(UTF16_BOMS):
            return "undecodable text: binary file (contains NUL bytes)"
        try:
            text, encoding = decode_text(record.payload)
        except UnicodeDecodeError as exc:
            return (
                f"undecodable text: not UTF-8 or GB18030 "
                f"(byte 0x{record.payload[exc.start]:02x} at offset {exc.start})"
            )
        meta = {**record.meta, "encoding": encoding}
        if encoding not in ("utf-8", "utf-8-sig"):
            meta["notes"] = [*record.meta.get("notes", []), f"decoded as {encoding.upper()}, stored as UTF-8"]
        return record.with_changes(payload=text.encode("utf-8"), meta=meta)


class NormalizeText:
    """Unicode NFKC and whitespace normalisation (never drops a record)."""

    name = "normalize-text"
    parallel_safe = True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="text")

    def check(self, record: Record) -> Record | str:
        text = normalize_text(record.payload.decode("utf-8"))
        return record.with_changes(payload=text.encode("utf-8"))


class ShortTexts:
    """Drop texts shorter than `min_chars` characters after normalisation."""

    name = "short-text"
    parallel_safe = True

    def __init__(self, min_chars: int) -> None:
        self.min_chars = min_chars

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="text")

    def check(self, record: Record) -> Record | str:
        length = len(record.payload.decode("utf-8"))
        if length < self.min_chars:
            return f"too short ({length} chars < {self.min_chars})"
        return record

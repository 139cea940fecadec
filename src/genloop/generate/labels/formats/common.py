"""What the container modules share: finding labels in metadata text, hashing content."""

from __future__ import annotations

import hashlib
import io
import re

from PIL import Image

from genloop.errors import DataError
from genloop.generate.labels.implicit import AIGC_FIELDS, ParsedLabel, aigc_from_xmp, parse_label

_PREFIX = re.compile(r"^\s*[\"']?aigc[\"']?\s*[:=]\s*", re.IGNORECASE)


def labels_in_text(text: str, location: str) -> list[ParsedLabel]:
    """The labels in one metadata text: an XMP packet, `AIGC: {json}`, or the JSON itself.

    A slot that names AIGC (its location, its XMP property or an `AIGC:` prefix) yields a
    label even when its content is unreadable (then every field is missing: malformed);
    any other text yields one only when it parses to an object with label fields.
    """
    lowered = text.lower()
    if (
        "aigc" not in location.lower()
        and "aigc" not in lowered
        and "produceid" not in lowered
        and "contentproducer" not in lowered
    ):
        return []
    if "<" in text and ("xmpmeta" in lowered or "rdf:" in lowered or ":aigc" in lowered):
        values = aigc_from_xmp(text)
        if values:
            return [_parse_slot(value, f"{location} (XMP AIGC property)", slot=True) for value in values]
    prefix = _PREFIX.match(text)
    slot = prefix is not None or "aigc" in location.lower()
    body = text[prefix.end() :] if prefix else text
    parsed = _parse_slot(body, location, slot=slot)
    if prefix is not None and prefix.group(0).strip().rstrip(":=").strip() != "AIGC":
        parsed.notes.append(f"prefix {prefix.group(0).strip()!r} read as 'AIGC:'")
    if not slot and not parsed.fields:
        return []
    return [parsed]


def _parse_slot(text: str, location: str, *, slot: bool) -> ParsedLabel:
    parsed = parse_label(text, location)
    if parsed is None:
        note = "the AIGC value is not a JSON object" if slot else "no JSON object"
        return ParsedLabel({}, [note], list(AIGC_FIELDS), location)
    return parsed


def sha256_hash(kind: str, *parts: bytes) -> str:
    digest = hashlib.sha256(kind.encode("ascii") + b"\0")
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return f"sha256:{digest.hexdigest()}"


def pixel_hash(data: bytes, fmt: str) -> str:
    """The decoded image: mode, size, palette, pixels (metadata and encoder choices left out)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image_pixel_hash(image)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot decode the {fmt.upper()} image: {exc}") from exc


def image_pixel_hash(image: Image.Image) -> str:
    """`pixel_hash` of an image in memory; equal to the file's when its format is lossless for the mode."""
    palette = (image.getpalette() or []) if image.mode == "P" else []
    return sha256_hash(
        "image-pixels/1",
        image.mode.encode("ascii"),
        f"{image.width}x{image.height}".encode("ascii"),
        bytes(palette),
        image.tobytes(),
    )


def decode_text(data: bytes, fmt: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"the {fmt} file is not UTF-8 (byte {exc.start})", hint="save it as UTF-8") from exc

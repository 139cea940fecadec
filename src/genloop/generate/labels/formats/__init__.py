"""Where the GB 45438 label lives in each file format, and what the content hash covers.

One module per container; each gives three functions over the file's bytes:

    texts(data)          → [(location, text)]  every metadata text a label may hide in (lenient)
    write(data, json)    → bytes               the label written into its strict slot (replacing one)
    content_hash(data)   → "sha256:<hex>"      the content, always WITHOUT the label

| format   | strict slot                                              | content hash covers            |
|----------|----------------------------------------------------------|--------------------------------|
| png      | iTXt `XML:com.adobe.xmp` (TC260:AIGC) + iTXt `AIGC`      | decoded pixels, mode, size     |
| jpeg     | APP1 XMP (TC260:AIGC)                                    | decoded pixels, mode, size     |
| webp     | `XMP ` chunk, extended (VP8X) format                     | decoded pixels, mode, size     |
| wav      | RIFF chunk `AIGC`                                        | `fmt ` and `data` chunks       |
| mid      | meta text event `AIGC:{json}` first in track 1           | header + every other event     |
| txt, md  | front matter `---\\nAIGC: {json}\\n---\\n`                 | the text without that line     |
| musicxml | `<miscellaneous-field name="AIGC">` in `<identification>` | canonical XML without it       |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from genloop.errors import DataError
from genloop.generate.labels.formats.common import labels_in_text
from genloop.generate.labels.implicit import ParsedLabel

FORMATS = ("png", "jpeg", "webp", "wav", "mid", "txt", "md", "musicxml")
_MODULES = {
    "png": "png",
    "jpeg": "jpeg",
    "webp": "webp",
    "wav": "wav",
    "mid": "midi",
    "txt": "text",
    "md": "text",
    "musicxml": "musicxml",
}
_EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".wav": "wav",
    ".mid": "mid",
    ".midi": "mid",
    ".txt": "txt",
    ".md": "md",
    ".markdown": "md",
    ".musicxml": "musicxml",
    ".xml": "musicxml",
}


@dataclass(frozen=True)
class Container:
    name: str
    texts: Callable[[bytes], list[tuple[str, str]]]
    write: Callable[[bytes, str], bytes]
    content_hash: Callable[[bytes], str]


def container(fmt: str) -> Container:
    if fmt not in _MODULES:
        raise DataError(f"no label container for format {fmt!r}", hint=f"supported: {', '.join(FORMATS)}")
    module: ModuleType = importlib.import_module(f"genloop.generate.labels.formats.{_MODULES[fmt]}")
    return Container(fmt, module.texts, module.write, module.content_hash)


def detect_format(data: bytes, name: str | None = None) -> str:
    """The format of a file from its first bytes (its name only to tell .md from .txt)."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"MThd"):
        return "mid"
    suffix = "" if name is None else "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    try:
        text = data[:4096].decode("utf-8", errors="strict" if len(data) <= 4096 else "ignore")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{name or 'the data'}: not a PNG, JPEG, WebP, WAV, MIDI, MusicXML or UTF-8 text file",
            hint=f"supported formats: {', '.join(FORMATS)}",
        ) from exc
    if "<score-partwise" in text or "<score-timewise" in text:
        return "musicxml"
    return "md" if _EXTENSIONS.get(suffix) == "md" else "txt"


def format_from_extension(name: str) -> str | None:
    return _EXTENSIONS.get("." + name.rsplit(".", 1)[-1].lower()) if "." in name else None


def find_labels(data: bytes, fmt: str) -> list[ParsedLabel]:
    """Every AIGC label found anywhere in the file (strict slot first), leniently parsed."""
    found: list[ParsedLabel] = []
    for location, text in container(fmt).texts(data):
        found.extend(labels_in_text(text, location))
    return found


__all__ = ["FORMATS", "Container", "container", "detect_format", "find_labels", "format_from_extension"]

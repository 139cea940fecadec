"""WebP: the label as an XMP packet in the `XMP ` chunk of the extended (VP8X) format.

A simple-format file (one VP8/VP8L chunk) is turned into the extended format: a VP8X
header with the canvas size and the XMP flag (and the alpha flag for VP8L with alpha),
the image chunk unchanged, then `XMP `.
"""

from __future__ import annotations

import struct

from genloop.errors import DataError
from genloop.generate.labels.formats.common import pixel_hash
from genloop.generate.labels.formats.riff import read_chunks, write_chunks
from genloop.generate.labels.implicit import xmp_packet

FORM = b"WEBP"
_XMP_FLAG, _ALPHA_FLAG = 0x04, 0x10


def texts(data: bytes) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for kind, payload in read_chunks(data, FORM):
        if kind.upper() in (b"XMP ", b"AIGC", b"EXIF"):
            text = payload.decode("utf-8", "replace" if kind != b"EXIF" else "ignore")
            found.append((f"webp chunk {kind.decode('latin-1').strip()}", text))
    return sorted(found, key=lambda item: "XMP" not in item[0])


def _canvas(kind: bytes, payload: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple-format image chunk (RFC 9649 §2.5, §3)."""
    if kind == b"VP8 " and len(payload) >= 10 and payload[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", payload[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if kind == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
        bits = int.from_bytes(payload[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise DataError(f"WebP image chunk {kind!r} has no readable header")


def write(data: bytes, json_text: str) -> bytes:
    chunks = [(kind, payload) for kind, payload in read_chunks(data, FORM) if kind != b"XMP "]
    if not chunks:
        raise DataError("empty WebP file")
    if chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] |= _XMP_FLAG
        chunks[0] = (b"VP8X", bytes(header))
    else:
        width, height = 0, 0
        alpha = False
        for kind, payload in chunks:
            if kind in (b"VP8 ", b"VP8L"):
                width, height, alpha = _canvas(kind, payload)
                break
        flags = _XMP_FLAG | (_ALPHA_FLAG if alpha else 0)
        vp8x = (
            bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        )
        chunks.insert(0, (b"VP8X", vp8x))
    chunks.append((b"XMP ", xmp_packet(json_text)))
    return write_chunks(chunks, FORM)


def content_hash(data: bytes) -> str:
    return pixel_hash(data, "webp")

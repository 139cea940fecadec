"""PNG: the label as an XMP packet (iTXt `XML:com.adobe.xmp`) and a plain iTXt `AIGC` chunk.

Both go right after IHDR, uncompressed; earlier copies are replaced. The pixels are not
re-encoded: chunks are spliced, so rewriting the label (propagator fields) keeps every
IDAT byte.
"""

from __future__ import annotations

import struct
import zlib

from genloop.errors import DataError
from genloop.generate.labels.formats.common import pixel_hash
from genloop.generate.labels.implicit import AIGC_KEY, XMP_KEYWORD, xmp_packet

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, CRCs not checked (a reader, not a validator)."""
    if not data.startswith(SIGNATURE):
        raise DataError("not a PNG file (bad signature)")
    out: list[tuple[bytes, bytes]] = []
    offset = len(SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        payload = data[offset + 8 : offset + 8 + length]
        if len(payload) != length:
            raise DataError(f"truncated PNG: chunk {kind!r} at byte {offset} runs past the end")
        out.append((kind, payload))
        offset += 12 + length
        if kind == b"IEND":
            break
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _text(kind: bytes, payload: bytes) -> tuple[str, str] | None:
    keyword, _, rest = payload.partition(b"\0")
    try:
        if kind == b"tEXt":
            return keyword.decode("latin-1"), rest.decode("latin-1")
        if kind == b"zTXt":
            return keyword.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
        compressed = rest[:1] == b"\x01"
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return keyword.decode("latin-1"), (zlib.decompress(text) if compressed else text).decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return None


def texts(data: bytes) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for kind, payload in chunks(data):
        if kind in _TEXT_CHUNKS and (entry := _text(kind, payload)) is not None:
            found.append((f"png {kind.decode()} {entry[0]}", entry[1]))
    # The strict slot first: XMP, then the plain AIGC chunk, then anything else.
    return sorted(found, key=lambda item: (XMP_KEYWORD not in item[0], AIGC_KEY not in item[0]))


def _itxt(keyword: str, text: bytes) -> bytes:
    return _chunk(b"iTXt", keyword.encode("latin-1") + b"\0\0\0\0\0" + text)


def write(data: bytes, json_text: str) -> bytes:
    ours = _itxt(XMP_KEYWORD, xmp_packet(json_text)) + _itxt(AIGC_KEY, json_text.encode("utf-8"))
    out = [SIGNATURE]
    for kind, payload in chunks(data):
        if kind in _TEXT_CHUNKS:
            keyword = payload.partition(b"\0")[0].decode("latin-1").lower()
            if keyword in (XMP_KEYWORD.lower(), AIGC_KEY.lower()):
                continue
        out.append(_chunk(kind, payload))
        if kind == b"IHDR":
            out.append(ours)
    return b"".join(out)


def content_hash(data: bytes) -> str:
    return pixel_hash(data, "png")

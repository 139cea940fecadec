"""RIFF (WebP, WAV): top-level chunks as (id, payload), and back to bytes."""

from __future__ import annotations

import struct

from genloop.errors import DataError


def read_chunks(data: bytes, form: bytes) -> list[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != form:
        raise DataError(f"not a RIFF {form.decode().strip()} file")
    out: list[tuple[bytes, bytes]] = []
    offset = 12
    while offset + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[offset : offset + 8])
        payload = data[offset + 8 : offset + 8 + length]
        if len(payload) != length:
            raise DataError(
                f"truncated {form.decode().strip()}: chunk {kind!r} at byte {offset} runs past the end"
            )
        out.append((kind, payload))
        offset += 8 + length + (length & 1)
    return out


def write_chunks(chunks: list[tuple[bytes, bytes]], form: bytes) -> bytes:
    body = b"".join(
        kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")
        for kind, payload in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body) + 4) + form + body

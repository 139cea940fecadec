"""WAV: the label JSON in a RIFF chunk `AIGC` at the end of the file.

Also read: any chunk named aigc in another case, XMP (`_PMX`), LIST/INFO text entries.
The content hash covers the `fmt ` and `data` chunks (the audio as played).
"""

from __future__ import annotations

from genloop.errors import DataError
from genloop.generate.labels.formats.common import sha256_hash
from genloop.generate.labels.formats.riff import read_chunks, write_chunks

FORM = b"WAVE"


def texts(data: bytes) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for kind, payload in read_chunks(data, FORM):
        name = kind.decode("latin-1")
        if kind.upper() == b"AIGC":
            found.insert(0, (f"wav chunk {name}", payload.decode("utf-8", "replace")))
        elif kind in (b"_PMX", b"iXML", b"LIST", b"bext"):
            found.append((f"wav chunk {name}", payload.decode("utf-8", "ignore")))
    return found


def write(data: bytes, json_text: str) -> bytes:
    chunks = [(kind, payload) for kind, payload in read_chunks(data, FORM) if kind.upper() != b"AIGC"]
    chunks.append((b"AIGC", json_text.encode("utf-8")))
    return write_chunks(chunks, FORM)


def content_hash(data: bytes) -> str:
    chunks = dict(read_chunks(data, FORM))
    if b"fmt " not in chunks or b"data" not in chunks:
        raise DataError("WAV file without a `fmt ` or `data` chunk")
    return sha256_hash("wav-audio/1", chunks[b"fmt "], chunks[b"data"])

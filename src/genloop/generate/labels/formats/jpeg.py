"""JPEG: the label as an XMP packet in an APP1 segment (after JFIF's APP0).

Other text places read leniently: COM segments and the Exif APP1 (a JSON in an Exif
text tag). Segments are spliced; the entropy-coded data is never touched.
"""

from __future__ import annotations

import struct

from genloop.errors import DataError
from genloop.generate.labels.formats.common import pixel_hash
from genloop.generate.labels.implicit import xmp_packet

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_APP0, _APP1, _COM, _SOS = 0xE0, 0xE1, 0xFE, 0xDA


def segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The marker segments before the scan as (marker, payload), and the rest from SOS on."""
    if not data.startswith(b"\xff\xd8"):
        raise DataError("not a JPEG file (no SOI marker)")
    out: list[tuple[int, bytes]] = []
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise DataError(f"broken JPEG: no marker at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == _SOS or marker == 0xD9:
            return out, data[offset:]
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        out.append((marker, data[offset + 4 : offset + 2 + length]))
        offset += 2 + length
    raise DataError("truncated JPEG: no scan (SOS) found")


def texts(data: bytes) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    markers, _ = segments(data)
    for marker, payload in markers:
        if marker == _APP1 and payload.startswith(XMP_HEADER):
            found.insert(0, ("jpeg APP1 XMP", payload[len(XMP_HEADER) :].decode("utf-8", "replace")))
        elif marker == _APP1 and payload.startswith(b"Exif\0"):
            found.append(("jpeg APP1 Exif", payload.decode("utf-8", "ignore")))
        elif marker == _COM:
            found.append(("jpeg COM", payload.decode("utf-8", "replace")))
    return found


def write(data: bytes, json_text: str) -> bytes:
    payload = XMP_HEADER + xmp_packet(json_text)
    if len(payload) + 2 > 0xFFFF:
        raise DataError(f"the label's XMP packet is {len(payload)} bytes, over the 65533 of one JPEG segment")
    ours = b"\xff" + bytes([_APP1]) + struct.pack(">H", len(payload) + 2) + payload
    markers, scan = segments(data)
    out = [b"\xff\xd8"]
    placed = False
    for marker, body in markers:
        if marker == _APP1 and body.startswith(XMP_HEADER):
            continue
        if not placed and marker != _APP0:
            out.append(ours)
            placed = True
        out.append(b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body)
    if not placed:
        out.append(ours)
    out.append(scan)
    return b"".join(out)


def content_hash(data: bytes) -> str:
    return pixel_hash(data, "jpeg")

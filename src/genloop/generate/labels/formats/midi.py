"""Standard MIDI File: the label as a meta text event `AIGC:{json}` at tick 0 of track 1.

Read leniently from any text-like meta event (types 0x01-0x0F) in any track that holds
an AIGC JSON. The content hash covers the header and every event of every track as
(absolute tick, bytes with running status expanded), the AIGC events left out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from genloop.errors import DataError
from genloop.generate.labels.formats.common import sha256_hash

_TEXT_META = range(0x01, 0x10)
_DATA_BYTES = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


@dataclass(frozen=True)
class Event:
    delta: int
    message: bytes
    """Status byte included (running status expanded)."""

    @property
    def meta_text(self) -> str | None:
        if len(self.message) >= 2 and self.message[0] == 0xFF and self.message[1] in _TEXT_META:
            _, start = _read_vlq(self.message, 2)
            return self.message[start:].decode("utf-8", "replace")
        return None

    @property
    def is_label(self) -> bool:
        text = self.meta_text
        return text is not None and text.lstrip().lower().startswith("aigc")


def _read_vlq(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if offset >= len(data):
            raise DataError("truncated MIDI: a variable-length number runs past the end")
        byte = data[offset]
        offset += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, offset
    raise DataError("broken MIDI: a variable-length number longer than 4 bytes")


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def read(data: bytes) -> tuple[bytes, list[list[Event]]]:
    """The MThd payload and every MTrk's events."""
    if not data.startswith(b"MThd"):
        raise DataError("not a MIDI file (no MThd header)")
    (length,) = struct.unpack(">I", data[4:8])
    header, offset, tracks = data[8 : 8 + length], 8 + length, []
    while offset + 8 <= len(data):
        kind, length = struct.unpack(">4sI", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if len(body) != length:
            raise DataError(f"truncated MIDI: chunk {kind!r} at byte {offset} runs past the end")
        if kind == b"MTrk":
            tracks.append(_events(body))
        offset += 8 + length
    return header, tracks


def _events(body: bytes) -> list[Event]:
    events, offset, running = [], 0, 0
    while offset < len(body):
        delta, offset = _read_vlq(body, offset)
        status = body[offset]
        if status == 0xFF:
            length, start = _read_vlq(body, offset + 2)
            end = start + length
        elif status in (0xF0, 0xF7):
            length, start = _read_vlq(body, offset + 1)
            end = start + length
        else:
            if status & 0x80:
                running, offset_data = status, offset + 1
            elif running:
                offset_data = offset
            else:
                raise DataError(f"broken MIDI: data byte without a status at track byte {offset}")
            end = offset_data + _DATA_BYTES.get(running >> 4, 0)
            events.append(Event(delta, bytes([running]) + body[offset_data:end]))
            offset = end
            continue
        events.append(Event(delta, body[offset:end]))
        offset = end
    return events


def _track_bytes(events: list[Event]) -> bytes:
    return b"".join(_vlq(event.delta) + event.message for event in events)


def texts(data: bytes) -> list[tuple[str, str]]:
    _, tracks = read(data)
    return [
        (f"mid track {number} meta text", text)
        for number, events in enumerate(tracks, start=1)
        for event in events
        if (text := event.meta_text) is not None and "aigc" in text.lower()
    ]


def _without_labels(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    carry = 0
    for event in events:
        if event.is_label:
            carry += event.delta
            continue
        out.append(Event(event.delta + carry, event.message))
        carry = 0
    return out


def write(data: bytes, json_text: str) -> bytes:
    header, tracks = read(data)
    if not tracks:
        raise DataError("MIDI file without a track: nowhere to put the label")
    text = f"AIGC:{json_text}".encode()
    label = Event(0, b"\xff\x01" + _vlq(len(text)) + text)
    tracks = [_without_labels(events) for events in tracks]
    tracks[0] = [label, *tracks[0]]
    out = [b"MThd" + struct.pack(">I", len(header)) + header]
    for events in tracks:
        body = _track_bytes(events)
        out.append(b"MTrk" + struct.pack(">I", len(body)) + body)
    return b"".join(out)


def content_hash(data: bytes) -> str:
    header, tracks = read(data)
    parts = [header]
    for events in tracks:
        tick, flat = 0, []
        for event in events:
            tick += event.delta
            if not event.is_label:
                flat.append(_vlq(tick) + event.message)
        parts.append(b"".join(flat))
    return sha256_hash("midi-events/1", *parts)

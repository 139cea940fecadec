"""The newest sample a training run wrote (runs/RUN_ID/samples/), ready to inline in the report.

A grid PNG is shown as it is (re-encoded as a smaller PNG when large or not PNG), a
text sample as an excerpt, a MIDI sample as a piano roll plus the file itself as a
data: link a browser can download.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from genloop.report.plots import piano_roll, png_uri

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
TEXT_SUFFIXES = (".txt", ".md", ".json")
MIDI_SUFFIXES = (".mid", ".midi")
MAX_INLINE_PNG_BYTES = 1_500_000
MAX_IMAGE_SIDE = 1024
DISPLAY_SIDE = 640  # small grids are scaled up by a whole factor until the longer side nears this
MAX_TEXT_CHARS = 1500
MAX_MIDI_BYTES = 2_000_000


@dataclass
class Sample:
    """One sample file as the page shows it; `kind` is image, text or midi."""

    name: str
    kind: str
    image: str | None = None  # PNG data: URI (the grid, or the piano roll of a MIDI file)
    width: int | None = None  # display width in CSS px: small grids scaled up by a whole factor
    text: str | None = None
    midi: str | None = None  # audio/midi data: URI
    problem: str | None = None  # why it could not be shown


def newest_sample(samples_dir: Path) -> Sample | None:
    """The newest (by name, then mtime) image, text or MIDI sample in `samples_dir`; None if none."""
    if not samples_dir.is_dir():
        return None
    suffixes = IMAGE_SUFFIXES + TEXT_SUFFIXES + MIDI_SUFFIXES
    files = [p for p in samples_dir.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if not files:
        return None
    # epoch-002.png sorts after epoch-001.png; mtime breaks ties between kinds of one epoch.
    newest = max(files, key=lambda p: (p.stem, p.stat().st_mtime))
    suffix = newest.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _image(newest)
    if suffix in MIDI_SUFFIXES:
        return _midi(newest)
    return Sample(newest.name, "text", text=_excerpt(newest.read_bytes()))


def _image(path: Path) -> Sample:
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            width = image.width * max(1, DISPLAY_SIDE // max(image.size))  # 28-px digits: 4x, crisp
            if data.startswith(b"\x89PNG") and len(data) <= MAX_INLINE_PNG_BYTES:
                return Sample(path.name, "image", image=png_uri(data), width=width)
            image.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
            small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except Exception as exc:  # a broken sample file should not stop the whole report
        return Sample(path.name, "image", problem=f"cannot decode {path.name}: {exc}")
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return Sample(path.name, "image", image=png_uri(buffer.getvalue()), width=min(width, small.width))


def _excerpt(payload: bytes) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text[:MAX_TEXT_CHARS] + ("…" if len(text) > MAX_TEXT_CHARS else "")


def midi_notes(data: bytes) -> list[tuple[float, float, int]]:
    """(start s, duration s, pitch) of every note; tempo changes are applied by mido's playback clock."""
    import mido  # the music extra; MIDI samples exist only where it is installed

    midi = mido.MidiFile(file=io.BytesIO(data))
    now = 0.0
    sounding: dict[tuple[int, int], float] = {}
    notes: list[tuple[float, float, int]] = []
    for message in midi:  # merged tracks; message.time is the delta in seconds
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault((message.channel, message.note), now)
        elif message.type in ("note_off", "note_on"):
            start = sounding.pop((message.channel, message.note), None)
            if start is not None:
                notes.append((start, max(now - start, 0.01), message.note))
    notes.extend((start, max(now - start, 0.01), note) for (_, note), start in sounding.items())
    return sorted(notes)


def _midi(path: Path) -> Sample:
    data = path.read_bytes()
    sample = Sample(path.name, "midi")
    if len(data) <= MAX_MIDI_BYTES:
        sample.midi = "data:audio/midi;base64," + base64.b64encode(data).decode("ascii")
    try:
        sample.image = piano_roll(midi_notes(data), title=path.name)
    except Exception as exc:  # mido raises several types for malformed files
        sample.problem = f"cannot read {path.name} as MIDI: {exc}"
    return sample

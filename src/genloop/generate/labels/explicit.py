"""Explicit (visible/audible) AI-generated marks: image text, a text line, an audio chime.

GB 45438-2025 §4 asks for a mark a person notices: on images, text in a corner whose
height is at least 5 % of the shorter side; on text, a line at the start or end; on
audio, a spoken or tone cue. Here:

- image: the configured text (default "AI生成") in white with a dark outline on a
  translucent dark box, in the configured corner; the glyph box height (measured on the
  rendered ink, not the font size) is max(5.5 % of the shorter side, 10 px). CJK text
  needs a CJK font (Debian fonts-wqy-microhei); a font is used only if it really has a
  glyph for every character (checked against its .notdef rendering).
- text: a prefix or suffix line (`LabelConfig.text_line`), not added twice.
- WAV: a two-tone chime (880 Hz then 1320 Hz, 0.15 s each, 0.1 s silence) before the audio;
  `has_chime` finds it again by the energy at those frequencies.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from genloop.errors import ConfigError, DataError
from genloop.generate.labels.formats.riff import read_chunks, write_chunks

FONT_ENV = "GENLOOP_LABEL_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
MIN_HEIGHT_FRACTION = 0.055
MIN_HEIGHT_PX = 10
TEXT_MARKER = re.compile(r"AI\s*生成|人工智能生成|AI[- ]generated|AI-generated", re.IGNORECASE)


@dataclass(frozen=True)
class ImageMark:
    image: Image.Image
    glyph_box: tuple[int, int, int, int]
    """(left, top, right, bottom) of the rendered text ink in the output image."""
    font: str

    @property
    def glyph_height(self) -> int:
        return self.glyph_box[3] - self.glyph_box[1]


# ---- image ------------------------------------------------------------------------------------


def _renders(font: ImageFont.FreeTypeFont, text: str) -> bool:
    """True when every visible character has its own glyph (not the font's .notdef box)."""
    notdef = _glyph(font, "\U0010fffd")
    return all(ch.isspace() or _glyph(font, ch) != notdef for ch in text)


def _glyph(font: ImageFont.FreeTypeFont, char: str) -> bytes:
    left, top, right, bottom = (int(v) for v in font.getbbox(char))
    canvas = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(canvas).text((-left, -top), char, font=font, fill=255)
    return f"{canvas.size}".encode() + canvas.tobytes()


@lru_cache(maxsize=8)
def find_font(text: str) -> str:
    """The first installed font that can render `text` (GENLOOP_LABEL_FONT first)."""
    candidates = [os.environ[FONT_ENV]] if os.environ.get(FONT_ENV) else []
    for path in [*candidates, *FONT_CANDIDATES]:
        if Path(path).is_file() and _renders(ImageFont.truetype(path, 24), text):
            return path
    raise ConfigError(
        f"no installed font can render the label text {text!r}",
        hint="install a CJK font (apt-get install fonts-wqy-microhei) or set GENLOOP_LABEL_FONT "
        "to a .ttf/.ttc that has these characters, or change [generate.labels] visible_text",
    )


@lru_cache(maxsize=64)
def _sized_font(path: str, text: str, target: int) -> ImageFont.FreeTypeFont:
    size = target
    font = ImageFont.truetype(path, size)
    while (lambda box: box[3] - box[1])(font.getbbox(text)) < target:
        size += 1
        font = ImageFont.truetype(path, size)
    return font


def mark_image(image: Image.Image, text: str, corner: str = "bottom-right") -> ImageMark:
    """`image` with `text` drawn in `corner`; the glyph box is at least 5.5 % of the shorter side."""
    overlay, glyph_box, path = _mark_overlay(image.size, text, corner)
    marked = Image.alpha_composite(image.convert("RGBA"), overlay)
    mode = image.mode if image.mode in ("RGB", "RGBA", "L", "LA") else "RGB"
    return ImageMark(marked.convert(mode), glyph_box, path)


@lru_cache(maxsize=16)
def _mark_overlay(
    size: tuple[int, int], text: str, corner: str
) -> tuple[Image.Image, tuple[int, int, int, int], str]:
    """The mark alone on a transparent RGBA layer of `size`, its glyph box and font.

    It depends on the size, text and corner only, so a job of same-sized images draws the text
    once (the text rendering was ≈ 5 ms of every item) and composites it onto each; callers
    never modify the cached layer (alpha_composite makes a new image).
    """
    width, height = size
    target = max(math.ceil(MIN_HEIGHT_FRACTION * min(width, height)), MIN_HEIGHT_PX)
    path = find_font(text)
    font = _sized_font(path, text, target)
    stroke = max(1, target // 12)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, stroke_width=stroke))
    pad, margin = max(2, target // 4), max(1, round(0.02 * min(width, height)))
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    if box_w + 2 * margin > width or box_h + 2 * margin > height:
        raise DataError(
            f"a {width}×{height} image is too small for a legible {text!r} mark "
            f"({box_w}×{box_h} px at {target} px text)",
            hint="resize images first (post-processing `resize`), or set [generate.labels] visible = false",
        )
    x0 = margin if corner.endswith("left") else width - margin - box_w
    y0 = margin if corner.startswith("top") else height - margin - box_h
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=(0, 0, 0, 150))
    origin = (x0 + pad - left, y0 + pad - top)
    draw.text(
        origin, text, font=font, fill=(255, 255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0, 255)
    )
    ink = [int(v) for v in font.getbbox(text)]
    glyph_box = (origin[0] + ink[0], origin[1] + ink[1], origin[0] + ink[2], origin[1] + ink[3])
    return overlay, glyph_box, path


# ---- text -------------------------------------------------------------------------------------


def mark_text(text: str, line: str, position: str = "prefix", *, markdown: bool = False) -> str:
    """`text` with `line` first or last (a blank line between them in Markdown); idempotent."""
    gap = "\n\n" if markdown else "\n"
    if position == "prefix":
        return text if text.lstrip().startswith(line) else f"{line}{gap}{text}"
    if text.rstrip().endswith(line):
        return text
    return f"{text.rstrip(chr(10))}{gap}{line}\n"


def text_has_marker(body: str, line: str | None = None) -> bool:
    """True when the first or last non-empty line carries the configured line or a known marker."""
    lines = [candidate.strip() for candidate in body.splitlines() if candidate.strip()]
    ends = [lines[0], lines[-1]] if lines else []
    return any((line is not None and line in end) or TEXT_MARKER.search(end) for end in ends)


# ---- audio ------------------------------------------------------------------------------------

CHIME_TONES = ((880.0, 0.15), (1320.0, 0.15))
CHIME_GAP_S = 0.1
CHIME_LEVEL = 0.3


@dataclass(frozen=True)
class WavFormat:
    tag: int
    channels: int
    rate: int
    bits: int

    @classmethod
    def parse(cls, payload: bytes) -> WavFormat:
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", payload[:16])
        if tag == 0xFFFE and len(payload) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat GUID's first 2 bytes
            tag = struct.unpack("<H", payload[24:26])[0]
        if (tag, bits) not in ((1, 8), (1, 16), (1, 24), (1, 32), (3, 32)):
            raise DataError(
                f"WAV sample format {tag}/{bits}-bit is not supported for the chime",
                hint="render 16-bit PCM WAV, or set [generate.labels] audio_marker = 'none'",
            )
        return cls(tag, channels, rate, bits)

    def encode(self, samples: np.ndarray) -> bytes:
        """Float samples in [-1, 1], shape (frames,), → interleaved frames of this format."""
        frames = np.repeat(samples[:, None], self.channels, axis=1).reshape(-1)
        if self.tag == 3:
            return frames.astype("<f4").tobytes()
        if self.bits == 8:
            return np.round(frames * 127 + 128).astype(np.uint8).tobytes()
        scale = 2 ** (self.bits - 1) - 1
        ints = np.round(frames * scale).astype("<i4")
        if self.bits == 24:
            return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        return ints.astype("<i2" if self.bits == 16 else "<i4").tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        """Mono float samples of interleaved frames."""
        width = self.bits // 8
        data = data[: len(data) - len(data) % (width * self.channels)]
        if self.tag == 3:
            values = np.frombuffer(data, "<f4").astype(np.float64)
        elif self.bits == 8:
            values = (np.frombuffer(data, np.uint8).astype(np.float64) - 128) / 127
        elif self.bits == 24:
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3)
            ints = (
                raw[:, 0].astype(np.int32)
                | raw[:, 1].astype(np.int32) << 8
                | raw[:, 2].astype(np.int32) << 16
            )
            values = np.where(ints >= 2**23, ints - 2**24, ints) / (2**23 - 1)
        else:
            values = np.frombuffer(data, "<i2" if self.bits == 16 else "<i4") / (2 ** (self.bits - 1) - 1)
        return np.asarray(values.reshape(-1, self.channels).mean(axis=1))


def chime(rate: int) -> np.ndarray:
    parts = []
    for frequency, seconds in CHIME_TONES:
        t = np.arange(int(rate * seconds)) / rate
        envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms fades: no clicks
        parts.append(CHIME_LEVEL * envelope * np.sin(2 * np.pi * frequency * t))
    parts.append(np.zeros(int(rate * CHIME_GAP_S)))
    return np.concatenate(parts)


def add_chime(wav: bytes) -> bytes:
    """The WAV with the chime before its audio (same sample format; other chunks kept)."""
    chunks = read_chunks(wav, b"WAVE")
    fmt = WavFormat.parse(dict(chunks)[b"fmt "])
    return write_chunks(
        [
            (kind, fmt.encode(chime(fmt.rate)) + payload if kind == b"data" else payload)
            for kind, payload in chunks
        ],
        b"WAVE",
    )


def has_chime(wav: bytes) -> bool:
    """True when the audio opens with the two tones (each dominates its own 0.15 s window)."""
    chunks = dict(read_chunks(wav, b"WAVE"))
    if b"fmt " not in chunks or b"data" not in chunks:
        return False
    fmt = WavFormat.parse(chunks[b"fmt "])
    samples = fmt.decode(chunks[b"data"][: int(fmt.rate * 0.3) * fmt.channels * fmt.bits // 8])
    offset = 0
    for frequency, seconds in CHIME_TONES:
        window = samples[offset : offset + int(fmt.rate * seconds)]
        offset += int(fmt.rate * seconds)
        if len(window) < 16 or _tone_share(window, fmt.rate, frequency) < 0.6:
            return False
    return True


def _tone_share(window: np.ndarray, rate: int, frequency: float) -> float:
    """Share of the window's energy at `frequency` (±3 %)."""
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window)))) ** 2
    bins = np.fft.rfftfreq(len(window), 1 / rate)
    total = float(spectrum.sum())
    near = float(spectrum[np.abs(bins - frequency) <= 0.03 * frequency].sum())
    return near / total if total > 0 else 0.0


def describe_mark(mark: ImageMark, text: str, corner: str) -> dict[str, Any]:
    return {
        "kind": "image-text",
        "text": text,
        "corner": corner,
        "glyph_height_px": mark.glyph_height,
        "font": Path(mark.font).name,
    }

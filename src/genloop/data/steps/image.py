"""Image checks: size guard, full decode (normalised to PNG), blank/low-contrast filter.

Order matters and is what `clean` uses: the size guard reads only the header, so a
decompression bomb (a small file claiming gigapixels) is refused before anything is
decoded; the decode step then fully decodes (`verify()` catches broken chunks and
checksums, `load()` catches truncation) and re-encodes non-PNG files as PNG, so
every later stage reads PNG bytes; the blank filter reads those PNGs.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from genloop.data.pipeline import StepOutput, check_each
from genloop.data.record import Record

# Modes PNG stores as they are; anything else (CMYK, YCbCr, float) is converted to RGB.
PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


def open_image(payload: bytes) -> Image.Image:
    """Open (header only) without Pillow's own bomb warning: `ImageSizeGuard` enforces our limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(payload))


def _short(value: float) -> str:
    return f"{value:.1f}" if round(value, 1) == value else f"{value:.3g}"


class ImageSizeGuard:
    """Drop images whose header claims more than `max_pixels` pixels (decompression bombs)."""

    name = "image-size"
    parallel_safe = True
    drops_input_errors = True  # broken input, not a judgement: see genloop.data.pipeline

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="image")

    def check(self, record: Record) -> Record | str:
        try:
            with open_image(record.payload) as image:
                width, height = image.size
        except Image.DecompressionBombError as exc:
            return f"image too large: {exc}"
        except Exception:
            return record  # not an image at all: the decode step drops it with the reason
        if width * height > self.max_pixels:
            return f"image too large: {width}×{height} pixels > {self.max_pixels:,} (max_image_pixels)"
        return record


def _as_png(image: Image.Image) -> bytes:
    image = ImageOps.exif_transpose(image)  # phone photos: apply the rotation the camera recorded
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_failure(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "undecodable image: cannot identify image file (not an image, or an unsupported format)"
    message = str(exc) or exc.__class__.__name__
    if "truncat" in message.lower():
        return f"truncated image ({message})"
    return f"undecodable image: {message}"


class DecodeImages:
    """Drop files that do not fully decode; re-encode the rest as PNG.

    The record id stays the hash of the *original* file (lineage back to it); only
    the payload changes, and `meta.format` keeps the original format.
    """

    name = "decode-image"
    parallel_safe = True
    drops_input_errors = True  # broken input, not a judgement: see genloop.data.pipeline

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="image")

    def check(self, record: Record) -> Record | str:
        if not record.payload:
            return "empty file (0 bytes)"
        try:
            with open_image(record.payload) as image:
                image.verify()  # checksums and chunk structure, without decoding pixels
            with open_image(record.payload) as image:
                image.load()  # every pixel: this is what catches truncation
                info: dict[str, Any] = {"format": image.format, "width": image.width, "height": image.height}
                payload = record.payload if image.format == "PNG" else _as_png(image)
        # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error, ...) on
        # malformed input; any of them means "this file cannot be used", with its message.
        except Exception as exc:
            return _decode_failure(exc)
        return record.with_changes(payload=payload, meta={**record.meta, **info})


class BlankImages:
    """Drop blank or nearly uniform images: grey-level standard deviation (0-255) below `min_std`."""

    name = "blank-image"
    parallel_safe = True

    def __init__(self, min_std: float) -> None:
        self.min_std = min_std

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="image")

    def check(self, record: Record) -> Record | str:
        try:
            with open_image(record.payload) as image:
                grey = np.asarray(image.convert("L"), dtype=np.float32)
        except Exception as exc:
            return _decode_failure(exc)
        std = float(grey.std())
        if std < self.min_std:
            shown = f"{std:.1f}" if round(std, 1) < self.min_std else f"{std:.3f}"
            return f"blank image (std={shown} < {_short(self.min_std)})"
        return record

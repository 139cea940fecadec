"""Mode and size normalisation: every image leaves as an 8-bit L or RGB PNG.

`DecodeImages` proves a file decodes and re-encodes it as PNG but keeps its mode,
so a dataset can still hold 16-bit scans, palettes, transparency and 6000-pixel
photos. Models want one thing: 8-bit grey or colour pixels of a bounded size.

* 16-bit grey (`I;16`, and `I` from 16-bit PNGs) is *scaled* (value / 257), not
  clipped: Pillow's own `convert("L")` saturates everything above 255, which turns a
  16-bit scan white and lets the blank filter drop it.
* Transparency (RGBA, LA, palettes with a transparent index) is composited on white,
  the background a person sees the image on, instead of being dropped to black.
* `mode = "L"` or `"RGB"` converts every image to that; `"keep"` keeps grey images
  grey and colour images colour.
* `max_side` shrinks (never enlarges) so the longer side fits, with LANCZOS.

A record whose pixels already are what it would become keeps its payload bytes
as they are; `meta.normalized` lists what was done to the others.
"""

from __future__ import annotations

import io
from typing import Literal

from PIL import Image

from genloop.data.phash import SIXTEEN_BIT_MODES, open_for_hash, to_8bit
from genloop.data.pipeline import StepOutput, check_each
from genloop.data.record import Record

ImageMode = Literal["keep", "L", "RGB"]
GREY_MODES = frozenset({"1", "L", "LA", *SIXTEEN_BIT_MODES})


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an image with an alpha channel (or a transparent palette entry) on white."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info)


def normalize_image(
    image: Image.Image, mode: ImageMode, max_side: int | None
) -> tuple[Image.Image, list[str]]:
    """The image as 8-bit L or RGB (and at most `max_side` on its longer side), plus what changed."""
    notes: list[str] = []
    target = mode if mode != "keep" else ("L" if image.mode in GREY_MODES else "RGB")
    if image.mode in SIXTEEN_BIT_MODES:
        image = to_8bit(image)
        notes.append("16-bit scaled to 8-bit")
    if _has_alpha(image):
        grey = image.mode == "LA"
        image = _on_white(image)
        image = image.convert("L") if grey and target == "L" else image
        notes.append("transparency composited on white")
    if image.mode != target:
        notes.append(f"{image.mode} converted to {target}")
        image = image.convert(target)
    if max_side is not None and max(image.size) > max_side:
        before = image.size
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
        notes.append(f"resized {before[0]}×{before[1]} to {size[0]}×{size[1]}")
    return image, notes


class NormalizeImages:
    """Convert every image to 8-bit L or RGB (optionally bounded in size), re-encoded as PNG."""

    name = "normalize-image"
    parallel_safe = True

    def __init__(self, *, mode: ImageMode = "keep", max_side: int | None = None) -> None:
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be at least 1 pixel, got {max_side}")
        self.mode: ImageMode = mode
        self.max_side = max_side

    def __call__(self, batch: list[Record]) -> StepOutput:
        return check_each(batch, self.check, modality="image")

    def check(self, record: Record) -> Record | str:
        try:
            with open_for_hash(record.payload) as image:
                image.load()
                normalized, notes = normalize_image(image, self.mode, self.max_side)
                if not notes:
                    return record
                buffer = io.BytesIO()
                normalized.save(buffer, format="PNG")
        # Pillow raises many types on malformed input; the decode step normally caught them.
        except Exception as exc:
            return f"undecodable image: {exc or exc.__class__.__name__}"
        meta = {
            **record.meta,
            "width": normalized.width,
            "height": normalized.height,
            "mode": normalized.mode,
            "normalized": notes,
        }
        return record.with_changes(payload=buffer.getvalue(), meta=meta)

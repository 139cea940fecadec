"""Image post-processors and the contact sheet.

Processors (each `Artifact → Artifact`, image in, image out; none encodes or writes a file):

    resize         longer side to `size` px, Lanczos, up or down, aspect kept
    upscale        both sides × `factor` (> 1), Lanczos
    format         png | webp | jpeg: sets `Artifact.format` and the encoder options
                   ({"quality": q} for JPEG/WebP); JPEG gets an RGB image (alpha flattened on white)
    denoise        median filter of `size` × `size` pixels (odd), removes salt-and-pepper specks
    sharpen        unsharp mask: radius (blur sigma, px), percent (strength), threshold (levels)

`contact_sheet(images, columns)` is a plain function, not a processor: a sheet is made from many
items at once (by the CLI and the report), never from one artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageFilter

from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.registry import Processor, register_processor

IMAGE = frozenset({"image"})
FORMATS = ("png", "webp", "jpeg")
WHITE = (255, 255, 255)
LOSSLESS_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})


@dataclass
class Resize:
    size: int
    name: str = "resize"
    modalities: frozenset[str] = IMAGE

    def apply(self, artifact: Artifact) -> Artifact:
        image = artifact.image
        scale = self.size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return artifact.replace(data=image.resize(target, Image.Resampling.LANCZOS))


@register_processor("resize")
def resize(*, size: int) -> Processor:
    """Longer side to `size` pixels with Lanczos (up- or down-scaling), aspect kept."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels (got {size})")
    return Resize(size)


@dataclass
class Upscale:
    factor: float
    name: str = "upscale"
    modalities: frozenset[str] = IMAGE

    def apply(self, artifact: Artifact) -> Artifact:
        image = artifact.image
        target = (round(image.width * self.factor), round(image.height * self.factor))
        return artifact.replace(data=image.resize(target, Image.Resampling.LANCZOS))


@register_processor("upscale")
def upscale(*, factor: float) -> Processor:
    """Both sides × `factor` with Lanczos (2 turns a 64 × 64 sample into 128 × 128)."""
    if not isinstance(factor, int | float) or not 1 < factor <= 16:
        raise ValueError(f"factor must be a number above 1 and at most 16 (got {factor!r})")
    return Upscale(float(factor))


def flatten_for_jpeg(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """An image JPEG can hold: grayscale stays `L`, anything else becomes RGB, alpha composited on white."""
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("RGBA", "LA", "P", "PA") and (image.mode != "P" or "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


@dataclass
class Format:
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    name: str = "format"
    modalities: frozenset[str] = IMAGE

    def apply(self, artifact: Artifact) -> Artifact:
        image = artifact.image
        if self.target == "jpeg":
            image = flatten_for_jpeg(image)
        elif image.mode not in LOSSLESS_MODES:  # e.g. CMYK or YCbCr, which PNG cannot hold
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        return artifact.replace(data=image, format=self.target, options=dict(self.options))


@register_processor("format")
def format_(*, format: str, quality: int | None = None, lossless: bool = False) -> Processor:
    """Encode as `format` (png | webp | jpeg); `quality` 1-95 for JPEG/WebP (default 90); `lossless` WebP."""
    target = str(format).lower().replace("jpg", "jpeg")
    if target not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {format!r})")
    if quality is not None and target == "png":
        raise ValueError("quality applies to jpeg and webp only; PNG is lossless (remove `quality`)")
    if lossless and target != "webp":
        raise ValueError(f"lossless applies to webp only (format is {target})")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95
    ):
        raise ValueError(f"quality must be a whole number from 1 to 95 (got {quality!r})")
    options: dict[str, Any] = {}
    if target in ("jpeg", "webp"):
        options["quality"] = 90 if quality is None else quality
    if lossless:
        options["lossless"] = True
    return Format(target, options)


@dataclass
class Denoise:
    size: int
    name: str = "denoise"
    modalities: frozenset[str] = IMAGE

    def apply(self, artifact: Artifact) -> Artifact:
        image = artifact.image
        if image.mode == "P":  # a median of palette indices is meaningless
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return artifact.replace(data=image.filter(ImageFilter.MedianFilter(self.size)))


@register_processor("denoise")
def denoise(*, size: int = 3) -> Processor:
    """Median filter over a `size` × `size` window (odd, 3-9): removes isolated specks, keeps edges."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size > 9 or size % 2 == 0:
        raise ValueError(f"size must be an odd whole number from 3 to 9 (got {size!r})")
    return Denoise(size)


@dataclass
class Sharpen:
    radius: float
    percent: int
    threshold: int
    name: str = "sharpen"
    modalities: frozenset[str] = IMAGE

    def apply(self, artifact: Artifact) -> Artifact:
        image = artifact.image
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mask = ImageFilter.UnsharpMask(radius=self.radius, percent=self.percent, threshold=self.threshold)
        return artifact.replace(data=image.filter(mask))


@register_processor("sharpen")
def sharpen(*, radius: float = 2.0, percent: int = 150, threshold: int = 3) -> Processor:
    """Unsharp mask: add `percent` % of (image − its `radius` px Gaussian blur) where above `threshold`."""
    if not isinstance(radius, int | float) or not 0 < radius <= 50:
        raise ValueError(f"radius must be above 0 and at most 50 pixels (got {radius!r})")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent <= 1000:
        raise ValueError(f"percent must be a whole number from 1 to 1000 (got {percent!r})")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be a whole number from 0 to 255 (got {threshold!r})")
    return Sharpen(float(radius), percent, threshold)


def contact_sheet(
    images: Sequence[Image.Image],
    columns: int,
    *,
    cell: int | None = None,
    padding: int = 4,
    background: tuple[int, int, int] = WHITE,
) -> Image.Image:
    """One RGB sheet of `images` in rows of `columns`, each fitted (Lanczos, aspect kept) and centred in a
    square `cell` px wide (default: the largest side among the images), `padding` px around every cell.

    Size: columns' × (cell + padding) + padding wide, rows × (cell + padding) + padding high, where
    columns' = min(columns, len(images)).
    """
    if not images:
        raise GenloopError("contact sheet: no images given", hint="pass at least one image")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise GenloopError(f"contact sheet: columns must be a whole number of at least 1 (got {columns!r})")
    if cell is not None and cell < 1:
        raise GenloopError(f"contact sheet: cell must be at least 1 pixel (got {cell})")
    if padding < 0:
        raise GenloopError(f"contact sheet: padding must not be negative (got {padding})")
    side = cell or max(max(image.size) for image in images)
    used_columns = min(columns, len(images))
    rows = -(-len(images) // used_columns)
    step = side + padding
    sheet = Image.new("RGB", (used_columns * step + padding, rows * step + padding), background)
    for index, image in enumerate(images):
        tile = flatten_for_jpeg(image, background).convert("RGB")
        scale = side / max(tile.size)
        if scale != 1:
            target = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
            tile = tile.resize(target, Image.Resampling.LANCZOS)
        row, column = divmod(index, used_columns)
        left = padding + column * step + (side - tile.width) // 2
        top = padding + row * step + (side - tile.height) // 2
        sheet.paste(tile, (left, top))
    return sheet

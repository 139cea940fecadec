"""Perceptual hashes of images: a 64-bit pHash to find candidates, a 256-bit one to confirm.

pHash (http://www.hackerfactor.com/blog/index.php?/archives/432-Looks-Like-It.html):
shrink to 32×32 grey, take the 2-D DCT, keep the 8×8 lowest frequencies and set a
bit where a coefficient is above their median. Re-encoding, resizing, small
brightness changes and one-pixel shifts move few of those bits, so near-duplicates
are hashes within a small Hamming distance.

Why a second, finer hash: on small centred images the 64 bits are too coarse.
Measured on the 5,000 MNIST digits, 11,469 pairs of *different* images (two
people's handwriting, 94% of the same class) are within 6 bits, and keeping the
first of each cluster would drop 38% of the digits. The same construction at
16×16 frequencies of a 64×64 shrink (256 bits) keeps every one of those pairs
≥ 20 bits apart (99.9% ≥ 30; the closest look alike to a person too), while JPEG,
resize and brightness edits of a digit stay ≤ 10. So the 64-bit hash finds
candidates fast (multi-index lookup), and a candidate counts only if the 256-bit
hashes are within `fine_max_distance` (by default 3 bits per allowed 64-bit bit).

Both are bit-for-bit `imagehash.phash(image, hash_size=8 / 16)` (a test compares
them), but the DCT of a batch is two matrix products instead of two scipy calls
per image, and 16-bit images are scaled to 8-bit first (a plain `convert("L")`
clips them to white).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np
from PIL import Image

from genloop.data.record import Record

COARSE_SIDE = 8  # 8×8 low frequencies → the 64-bit hash
FINE_SIDE = 16  # 16×16 → the 256-bit confirming hash
OVERSAMPLE = 4  # pHash's DCT runs on 4× the hash side: 32×32 and 64×64 pixels
FINE_BITS_PER_COARSE_BIT = 3  # of the 4 the sizes would give: see `default_fine_max_distance`
META_COARSE, META_FINE = "phash", "phash256"

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageHashes(NamedTuple):
    coarse: int  # 64-bit pHash
    fine: int  # 256-bit pHash


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer) grey image scaled to 8-bit L; other images unchanged.

    `value / 257` maps 0..65535 onto 0..255 exactly (65535 / 257 = 255); Pillow's own
    conversion clips instead, which turns most of a 16-bit scan white. Mode `I` (32-bit)
    is scaled only when it uses the 16-bit range; values that fit 0..255 stay as they are.
    """
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode != "I" or pixels.max(initial=0) > 255:
        pixels = np.rint(pixels / 257.0)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def _shrunk(image: Image.Image, hash_side: int) -> np.ndarray:
    """The grey pixels pHash works on, as imagehash computes them (LANCZOS), as float64."""
    side = hash_side * OVERSAMPLE
    small = to_8bit(image).convert("L").resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64)


@cache
def _dct_rows(hash_side: int) -> np.ndarray:
    """The first `hash_side` rows of scipy's unnormalised DCT-II matrix for N = 4 × hash_side.

    y[k] = 2 Σ_n x[n] cos(π k (2n + 1) / 2N), as `scipy.fftpack.dct(x)` computes it.
    """
    size = hash_side * OVERSAMPLE
    k = np.arange(hash_side)[:, None]
    n = np.arange(size)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * size))


def phash_bits(pixels: np.ndarray, hash_side: int) -> np.ndarray:
    """(B, 4h, 4h) grey pixels → (B, h·h) bits, row-major from the top-left coefficient."""
    dct = _dct_rows(hash_side)
    low = dct @ pixels @ dct.T  # (B, h, h): the lowest h×h frequencies of each image
    flat = low.reshape(len(pixels), hash_side * hash_side)
    return flat > np.median(flat, axis=1, keepdims=True)


def phash_pixels(pixels: np.ndarray) -> np.ndarray:
    """64-bit pHashes of a batch of 32×32 grey images (B, 32, 32) → (B,) uint64."""
    packed = np.packbits(phash_bits(pixels, COARSE_SIDE), axis=1)  # (B, 8) bytes, MSB first
    return packed.view(">u8").ravel().astype(np.uint64)


def _as_ints(bits: np.ndarray) -> list[int]:
    return [int.from_bytes(row.tobytes(), "big") for row in np.packbits(bits, axis=1)]


def open_for_hash(payload: bytes) -> Image.Image:
    with warnings.catch_warnings():
        # The size guard earlier in the pipeline enforces the pixel limit.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(payload))


def shrink_for_hashes(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The 32×32 and 64×64 grey pixels both hashes need (kept instead of the full image)."""
    return _shrunk(image, COARSE_SIDE), _shrunk(image, FINE_SIDE)


def hashes_of_shrunk(shrunk: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[ImageHashes]:
    """Both hashes of every image from `shrink_for_hashes`; the DCTs of the batch run at once."""
    if not shrunk:
        return []
    coarse = _as_ints(phash_bits(np.stack([small for small, _ in shrunk]), COARSE_SIDE))
    fine = _as_ints(phash_bits(np.stack([large for _, large in shrunk]), FINE_SIDE))
    return [ImageHashes(c, f) for c, f in zip(coarse, fine, strict=True)]


def image_hashes(images: Sequence[Image.Image]) -> list[ImageHashes]:
    """Both hashes of every image."""
    return hashes_of_shrunk([shrink_for_hashes(image) for image in images])


def phash_images(images: Sequence[Image.Image]) -> np.ndarray:
    """64-bit pHashes of PIL images (B,) uint64 (what `imagehash.phash` gives, batched)."""
    if not images:
        return np.zeros(0, dtype=np.uint64)
    return phash_pixels(np.stack([_shrunk(image, COARSE_SIDE) for image in images]))


def phash_payloads(payloads: Sequence[bytes]) -> np.ndarray:
    """64-bit pHashes of encoded images (PNG, JPEG, ...) (B,) uint64. Raises what Pillow raises."""
    images = [open_for_hash(payload) for payload in payloads]
    try:
        return phash_images(images)
    finally:
        for image in images:
            image.close()


def hash_hex(value: int, bits: int = 64) -> str:
    return f"{value:0{bits // 4}x}"


def default_fine_max_distance(coarse_max_distance: int, chosen: int | None = None) -> int:
    """`chosen`, else the 256-bit threshold that goes with a 64-bit one: 3 bits per bit (18 for 6).

    The same *fraction* of the bits would be 4 per bit (24 of 256). Measured on the 5,000
    MNIST digits, the closest pairs of different digits that pass the 64-bit test are
    20–24 bits apart in the 256-bit hash, while JPEG, resize and brightness edits of a
    digit stay ≤ 10 (photos: 95% ≤ 18); 3 per bit keeps distinct digits apart. A
    1-pixel shift of a photo moves the fine hash more: collections of photos, where
    distinct images are ≥ 20 bits apart even in the 64-bit hash, can choose 24–256.
    """
    return chosen if chosen is not None else coarse_max_distance * FINE_BITS_PER_COARSE_BIT


def with_phashes(records: list[Record]) -> tuple[list[Record], list[ImageHashes | None]]:
    """Each image record with its hashes in `meta` (computed once, reused by later steps).

    Records that are not images, or that no longer decode, get None (the decode step
    has already dropped undecodable files, so None means "not an image").
    """
    hashes: list[ImageHashes | None] = [None] * len(records)
    todo: list[int] = []
    for i, record in enumerate(records):
        if record.modality != "image":
            continue
        coarse, fine = record.meta.get(META_COARSE), record.meta.get(META_FINE)
        if isinstance(coarse, str) and isinstance(fine, str):
            hashes[i] = ImageHashes(int(coarse, 16), int(fine, 16))
        else:
            todo.append(i)
    shrunk: list[tuple[np.ndarray, np.ndarray]] = []
    decoded: list[int] = []
    for i in todo:
        try:
            with open_for_hash(records[i].payload) as image:
                shrunk.append(shrink_for_hashes(image))  # a batch holds thumbnails, not photos
        except Exception:  # Pillow raises many types on broken input: leave it unhashed
            continue
        decoded.append(i)
    if not shrunk:
        return records, hashes
    out = list(records)
    for i, computed in zip(decoded, hashes_of_shrunk(shrunk), strict=True):
        hashes[i] = computed
        meta = {META_COARSE: hash_hex(computed.coarse), META_FINE: hash_hex(computed.fine, 256)}
        out[i] = records[i].with_changes(meta={**records[i].meta, **meta})
    return out, hashes

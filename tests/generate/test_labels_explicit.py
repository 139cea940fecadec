"""The visible/audible marks: measured glyph height, corner, legibility box, text line, chime."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from genloop.errors import ConfigError, DataError
from genloop.generate.labels.explicit import (
    add_chime,
    find_font,
    has_chime,
    mark_image,
    mark_text,
    text_has_marker,
)

GREY = 128


def _ink_box(marked: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of the near-white text pixels, measured on the output image."""
    luma = np.asarray(marked.convert("L"))
    rows, cols = np.nonzero(luma > 200)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


@pytest.mark.parametrize(("size", "mode"), [((256, 256), "RGB"), ((640, 360), "RGB"), ((200, 300), "L")])
def test_mark_text_is_at_least_5_percent_of_the_shorter_side(size: tuple[int, int], mode: str) -> None:
    image = Image.new(mode, size, GREY if mode == "L" else (GREY, GREY, GREY))
    mark = mark_image(image, "AI生成")
    left, top, _right, bottom = _ink_box(mark.image)
    assert bottom - top >= 0.05 * min(size)
    assert mark.image.mode == mode and mark.image.size == size
    # In the bottom-right corner, on a darkened box (legible on any background).
    assert left > size[0] / 2 and top > size[1] / 2
    luma = np.asarray(mark.image.convert("L")).astype(int)
    assert luma[bottom - 1, left - 2] < GREY - 30  # the translucent box behind the text


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_each_corner(corner: str) -> None:
    mark = mark_image(Image.new("RGB", (200, 200), (GREY,) * 3), "AI-generated", corner)
    left, top, _, _ = _ink_box(mark.image)
    assert (left < 100) == corner.endswith("left") and (top < 100) == corner.startswith("top")


def test_a_white_image_still_shows_the_mark() -> None:
    mark = mark_image(Image.new("RGB", (128, 128), (255, 255, 255)), "AI生成")
    region = np.asarray(mark.image.convert("L"))[
        mark.glyph_box[1] : mark.glyph_box[3], mark.glyph_box[0] : mark.glyph_box[2]
    ]
    assert region.min() < 100 and region.max() > 230  # dark box/outline around white glyphs


def test_a_tiny_image_is_refused_with_a_hint() -> None:
    with pytest.raises(DataError, match="too small"):
        mark_image(Image.new("L", (28, 28)), "AI生成")


def test_text_no_font_can_render_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no installed font can render"):
        find_font("AI\U000f0001")  # a private-use character: in no font


def test_text_line_prefix_suffix_and_idempotent() -> None:
    line = "【AI生成】本内容由人工智能生成"
    first = mark_text("A story.\n", line, "prefix")
    assert first.startswith(line + "\n") and mark_text(first, line, "prefix") == first
    last = mark_text("A story.", line, "suffix", markdown=True)
    assert last == f"A story.\n\n{line}\n" and mark_text(last, line, "suffix") == last
    assert text_has_marker(first) and text_has_marker(last) and not text_has_marker("A story.\n")
    assert text_has_marker("Hello\nThis text is AI-generated.")


def test_the_chime_is_prepended_and_found_again() -> None:
    import io
    import wave

    rate = 16000
    noise = (np.random.default_rng(0).normal(0, 0.1, rate) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(noise, 2).tobytes())
    plain = buffer.getvalue()
    assert not has_chime(plain)
    chimed = add_chime(plain)
    assert has_chime(chimed)
    with wave.open(io.BytesIO(chimed)) as reread:
        assert reread.getnchannels() == 2 and reread.getnframes() == rate + int(0.4 * rate)


def test_the_mark_is_drawn_once_per_size_and_composited_the_same_on_every_image() -> None:
    """The mark's layer is cached per (size, text, corner): a second image gets exactly what a
    fresh rendering gives it, and marking never alters the cached layer."""
    from genloop.generate.labels.explicit import _mark_overlay

    first = Image.new("RGB", (256, 256), (GREY,) * 3)
    second = Image.linear_gradient("L").convert("RGB")  # 256 × 256, another picture
    mark_image(first, "AI生成")
    cached = mark_image(second, "AI生成")
    _mark_overlay.cache_clear()
    fresh = mark_image(second, "AI生成")
    assert cached.image.tobytes() == fresh.image.tobytes() and cached.glyph_box == fresh.glyph_box
    assert mark_image(first, "AI生成").image.tobytes() == mark_image(first, "AI生成").image.tobytes()

"""Image post-processors: each one's measured effect, bad parameters, chains from config, contact sheets."""

import io

import numpy as np
import pytest
from PIL import Image

from genloop.errors import GenloopError
from genloop.generate.artifact import Artifact
from genloop.generate.postprocess.images import contact_sheet
from genloop.generate.postprocess.registry import build_chain, build_processor, run_chain


def item(image: Image.Image) -> Artifact:
    return Artifact(content_id="c1", modality="image", data=image, format="png")


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :] * np.ones((height, 1))
    return Image.fromarray(x.astype(np.uint8), mode="L").convert("RGB")


def test_resize_sets_the_longer_side_down_and_up() -> None:
    down = build_processor({"name": "resize", "size": 32}, "image").apply(item(gradient(64, 32)))
    up = build_processor({"name": "resize", "size": 64}, "image").apply(item(gradient(16, 8)))
    assert down.image.size == (32, 16)
    assert up.image.size == (64, 32)
    # Lanczos keeps the ramp: mean brightness unchanged within a level or two
    assert abs(np.asarray(down.image).mean() - np.asarray(gradient(64, 32)).mean()) < 2


def test_upscale_multiplies_both_sides_and_keeps_the_picture() -> None:
    source = gradient(16, 12)
    out = build_processor({"name": "upscale", "factor": 2}, "image").apply(item(source)).image
    assert out.size == (32, 24)
    back = np.asarray(out.resize(source.size, Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(back - np.asarray(source, dtype=float)).mean() < 3


def test_format_jpeg_flattens_alpha_on_white_and_carries_quality() -> None:
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 8, 16))  # left half fully transparent
    out = build_processor({"name": "format", "format": "jpeg", "quality": 75}, "image").apply(item(rgba))
    assert (out.format, out.options, out.extension) == ("jpeg", {"quality": 75}, ".jpg")
    assert out.image.mode == "RGB"
    assert out.image.getpixel((2, 8)) == (255, 255, 255)  # transparent → white, not the hidden blue
    assert out.image.getpixel((12, 8)) == (255, 0, 0)


def test_format_quality_changes_the_encoded_size() -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    sizes = {}
    for quality in (20, 95):
        out = build_processor({"name": "format", "format": "webp", "quality": quality}, "image").apply(
            item(noisy)
        )
        buffer = io.BytesIO()
        out.image.save(buffer, format=out.format, **out.options)
        sizes[quality] = len(buffer.getvalue())
    assert sizes[20] < sizes[95] / 2


def test_format_png_and_lossless_webp() -> None:
    png = build_processor({"name": "format", "format": "PNG"}, "image").apply(item(gradient(8, 8)))
    webp = build_processor({"name": "format", "format": "webp", "lossless": True}, "image").apply(
        item(gradient(8, 8))
    )
    assert (png.format, png.options) == ("png", {})
    assert webp.options == {"quality": 90, "lossless": True}
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red, in a mode PNG cannot hold
    as_png = build_processor({"name": "format", "format": "png"}, "image").apply(item(cmyk)).image
    assert as_png.mode == "RGB" and as_png.getpixel((0, 0)) == (255, 0, 0)


def test_denoise_removes_isolated_specks() -> None:
    pixels = np.full((32, 32), 128, dtype=np.uint8)
    pixels[4:32:6, 4:32:6] = 255  # 25 isolated specks
    out = build_processor({"name": "denoise", "size": 3}, "image").apply(item(Image.fromarray(pixels)))
    assert (pixels != 128).sum() == 25
    assert (np.asarray(out.image) != 128).sum() == 0


def test_sharpen_overshoots_at_an_edge_and_respects_its_threshold() -> None:
    pixels = np.full((16, 16), 100, dtype=np.uint8)
    pixels[:, 8:] = 150
    image = Image.fromarray(pixels)
    sharp = np.asarray(
        build_processor({"name": "sharpen", "radius": 1.5, "percent": 200}, "image").apply(item(image)).image
    )
    assert sharp.max() > 150 and sharp.min() < 100  # the edge got a bright and a dark rim
    assert sharp[:, 0].tolist() == [100] * 16  # flat areas untouched
    still = build_processor({"name": "sharpen", "threshold": 255}, "image").apply(item(image)).image
    assert np.array_equal(np.asarray(still), pixels)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"name": "resize", "size": 2}, "at least 8"),
        ({"name": "upscale", "factor": 0.5}, "above 1"),
        ({"name": "format", "format": "gif"}, "png, webp, jpeg"),
        ({"name": "format", "format": "jpeg", "quality": 0}, "1 to 95"),
        ({"name": "format", "format": "png", "quality": 80}, "PNG is lossless"),
        ({"name": "format", "format": "jpeg", "lossless": True}, "webp only"),
        ({"name": "denoise", "size": 4}, "odd"),
        ({"name": "sharpen", "percent": 0}, "percent"),
        ({"name": "sharpen", "radius": -1}, "radius"),
        ({"name": "resize", "side": 64}, "bad parameters"),
    ],
)
def test_bad_parameters_are_refused_clearly(spec: dict[str, object], words: str) -> None:
    with pytest.raises(GenloopError, match=words) as caught:
        build_processor(spec, "image")
    assert repr(spec["name"]) in str(caught.value)


def test_a_chain_from_config_specs_runs_in_order() -> None:
    chain = build_chain(
        [
            {"name": "upscale", "factor": 2},
            "denoise",
            "sharpen",
            {"name": "format", "format": "webp", "quality": 80},
        ],
        "image",
    )
    assert [processor.name for processor in chain] == ["upscale", "denoise", "sharpen", "format"]
    out = run_chain(chain, item(gradient(20, 10)))
    assert (out.image.size, out.format, out.options) == ((40, 20), "webp", {"quality": 80})


def test_image_processors_refuse_other_modalities() -> None:
    with pytest.raises(GenloopError, match="does not take text"):
        build_processor("denoise", "text")
    with pytest.raises(GenloopError, match="does not take music"):
        build_chain([{"name": "resize", "size": 64}], "music")


def test_contact_sheet_places_each_image_in_its_cell() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [Image.new("RGB", (10, 10), colour) for colour in colours]
    sheet = contact_sheet(images, columns=3, padding=2, background=(0, 0, 0))
    assert sheet.size == (3 * 12 + 2, 2 * 12 + 2)
    for index, colour in enumerate(colours):
        row, column = divmod(index, 3)
        assert sheet.getpixel((2 + column * 12 + 5, 2 + row * 12 + 5)) == colour
    assert sheet.getpixel((2 + 2 * 12 + 5, 2 + 12 + 5)) == (0, 0, 0)  # the sixth cell is empty


def test_contact_sheet_fits_mixed_sizes_into_square_cells() -> None:
    images = [Image.new("L", (40, 20), 200), Image.new("RGBA", (8, 16), (0, 0, 0, 0))]
    sheet = contact_sheet(images, columns=4, cell=20, padding=0)
    assert sheet.size == (40, 20) and sheet.mode == "RGB"  # only as many columns as images
    assert sheet.getpixel((10, 10)) == (200, 200, 200) and sheet.getpixel((10, 2)) == (255, 255, 255)
    assert sheet.getpixel((30, 10)) == (255, 255, 255)  # transparent → background


@pytest.mark.parametrize(("images", "columns"), [([], 2), ([Image.new("RGB", (4, 4))], 0)])
def test_contact_sheet_rejects_bad_input(images: list[Image.Image], columns: int) -> None:
    with pytest.raises(GenloopError, match="contact sheet"):
        contact_sheet(images, columns)

"""Image normalisation and the bomb guard on real crafted files: 16-bit, alpha, palettes, size."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig, parse_config
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.steps.image import ImageSizeGuard
from genloop.data.steps.image_normalize import NormalizeImages
from genloop.errors import ConfigError
from genloop.workspace import Workspace


def collect_and_clean(ws: Workspace, cfg: CleanConfig | None = None) -> CleanResult:
    catalog = open_catalog(ws.database_url)
    collected = collect(ws, catalog, CollectConfig(source="folder", path="data", license="MIT"), name="imgs")
    return clean(ws, catalog, collected.dataset, cfg or CleanConfig())


def by_path(result: CleanResult) -> dict[str, Record]:
    return {r.meta["path"]: r for r in result.dataset.iter_records()}


def pixels(record: Record) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(record.payload)))


def png_claiming(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header claims `width`×`height` grey pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_sixteen_bit_png_is_scaled_to_8_bit_not_clipped(sqlite_workspace: Workspace) -> None:
    path = sqlite_workspace.root / "data" / "scan" / "deep.png"
    path.parent.mkdir(parents=True)
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode == "I;16"
    assert np.asarray(Image.open(path).convert("L")).mean() > 250  # what plain Pillow would keep: white
    record = by_path(collect_and_clean(sqlite_workspace))["data/scan/deep.png"]
    assert record.meta["mode"] == "L" and record.meta["normalized"] == ["16-bit scaled to 8-bit"]
    assert np.array_equal(pixels(record), np.rint(ramp / 257).astype(np.uint8))  # 65535 → 255, 257 → 1


def test_transparency_and_palettes_become_rgb_on_white(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "x"
    root.mkdir(parents=True)
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[:8] = (200, 10, 10, 255)  # opaque red top half, fully transparent bottom half
    Image.fromarray(rgba).save(root / "logo.png")
    palette = Image.fromarray(np.indices((16, 16)).sum(axis=0).astype(np.uint8) % 4, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.save(root / "paletted.png", transparency=0)
    records = by_path(collect_and_clean(sqlite_workspace))
    logo = pixels(records["data/x/logo.png"])
    assert logo.shape == (16, 16, 3)
    assert (logo[:8] == (200, 10, 10)).all() and (logo[8:] == 255).all()
    paletted = pixels(records["data/x/paletted.png"])
    assert (
        paletted.shape == (16, 16, 3)
        and (paletted[0, 0] == 255).all()
        and (paletted[0, 1] == (255, 0, 0)).all()
    )
    assert records["data/x/paletted.png"].meta["normalized"] == ["transparency composited on white"]


def test_mode_and_max_side_options() -> None:
    photo = Image.fromarray(load_sample_images().images[0])  # 640×427 RGB
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    record = Record.create(buffer.getvalue(), modality="image", label=None, source="t", license="MIT")
    grey = NormalizeImages(mode="L", max_side=128).check(record)
    assert isinstance(grey, Record) and grey.id == record.id  # id stays the original file's hash
    assert pixels(grey).shape == (85, 128)
    assert grey.meta["normalized"] == ["RGB converted to L", "resized 640×427 to 128×85"]
    unchanged = NormalizeImages(mode="RGB", max_side=1000).check(record)
    assert unchanged is record  # already 8-bit RGB and small enough: same bytes
    digit = Record.create(
        _png(np.eye(8, dtype=np.uint8) * 255), modality="image", label=None, source="t", license="MIT"
    )
    colour = NormalizeImages(mode="RGB").check(digit)
    assert isinstance(colour, Record) and pixels(colour).shape == (8, 8, 3)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decompression_bomb_is_refused_without_allocating_it(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "x"
    root.mkdir(parents=True)
    (root / "bomb.png").write_bytes(png_claiming(30_000, 30_000))  # 900 megapixels, 0.9 GB as L
    (root / "big.png").write_bytes(png_claiming(8_000, 8_000))  # under Pillow's own limit, over ours
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "ok.png")
    assert len((root / "bomb.png").read_bytes()) < 120
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    result = collect_and_clean(sqlite_workspace)
    assert time.perf_counter() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 300_000  # far from 900 MB
    assert list(by_path(result)) == ["data/x/ok.png"]
    examples = sorted(result.report["dropped"]["image too large"]["examples"])
    assert examples[0] == "data/x/big.png: image too large: 8000×8000 pixels > 40,000,000 (max_image_pixels)"
    assert examples[1].startswith("data/x/bomb.png: image too large: ")
    assert "900000000 pixels" in examples[1]


def test_size_guard_reads_the_header_only() -> None:
    bomb = Record.create(
        png_claiming(30_000, 30_000), modality="image", label=None, source="t", license="MIT"
    )
    assert "too large" in str(ImageSizeGuard(40_000_000).check(bomb))


def test_image_section_in_genloop_toml() -> None:
    cfg = parse_config({"clean": {"image": {"mode": "L", "max_side": 64, "phash_max_distance": 4}}})
    assert (cfg.clean.image.mode, cfg.clean.image.max_side, cfg.clean.image.phash_max_distance) == (
        "L",
        64,
        4,
    )
    assert CleanConfig().image.near_dup and not CleanConfig().incremental_dedup  # growing folders: see config
    with pytest.raises(ConfigError) as error:
        parse_config({"clean": {"image": {"mode": "CMYK", "max_side": 0}}})
    assert "[clean].image.mode" in error.value.message and "[clean].image.max_side" in error.value.message


def test_every_image_leaves_as_8_bit_l_or_rgb(tmp_path: Path) -> None:
    modes = {
        "1": Image.new("1", (8, 8), 1),
        "LA": Image.new("LA", (8, 8), (40, 128)),
        "CMYK": Image.new("CMYK", (8, 8), (0, 255, 255, 0)),
        "I": Image.fromarray(np.full((8, 8), 40000, dtype=np.int32)),
    }
    step = NormalizeImages()
    for mode, image in modes.items():
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF")
        record = Record.create(buffer.getvalue(), modality="image", label=None, source="t", license="MIT")
        out = step.check(record)
        assert isinstance(out, Record), mode
        assert Image.open(io.BytesIO(out.payload)).mode in {"L", "RGB"}, mode

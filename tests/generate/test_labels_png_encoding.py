"""PNG labelling: the fast zlib settings still give valid files, and the content hash taken from
the pixels in memory is the one a verifier computes from the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.config import LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, encode
from genloop.generate.labels.formats.common import image_pixel_hash, pixel_hash
from genloop.generate.labels.signing import load_public_key
from genloop.generate.labels.verify import check_implicit
from genloop.workspace import Workspace


def _picture(mode: str) -> Image.Image:
    rng = np.random.default_rng(0)
    bands = len(mode)
    y, x = np.mgrid[0:96, 0:96]
    base = np.stack([(x + y + 40 * band) % 256 for band in range(bands)], -1)
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if bands == 1 else pixels, mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_labelled_pngs_decode_to_their_pixels_and_their_labels_verify(mode: str, tmp_path: Path) -> None:
    picture = _picture(mode)
    artifact = Artifact("c-png", "image", picture, "png")
    plain = encode(artifact)
    with Image.open(io.BytesIO(plain)) as decoded:
        assert decoded.format == "PNG" and decoded.mode == mode
        assert decoded.tobytes() == picture.tobytes()
    assert pixel_hash(plain, "png") == image_pixel_hash(picture)
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m-1")
    labelled = apply_labels(artifact, LabelConfig(visible=False, watermark=False), context)
    public = load_public_key(tmp_path / ".genloop" / "keys" / "aigc-ed25519.pub")
    assert check_implicit(labelled.data, "png", [public])[0].state == "valid"


def test_a_format_step_s_own_png_options_win() -> None:
    picture = _picture("RGB")
    fast = encode(Artifact("c", "image", picture, "png"))
    small = encode(Artifact("c", "image", picture, "png", {"compress_level": 9}))
    assert fast != small
    for data in (fast, small):
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.tobytes() == picture.tobytes()

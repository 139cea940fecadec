"""The watermark and C2PA steps, through the modules that provide them, read back by verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.config import LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, optional_label_module, set_propagator
from genloop.generate.labels.signing import load_public_key
from genloop.generate.labels.verify import verify_bytes
from genloop.workspace import Workspace


def _image() -> Image.Image:
    y, x = np.mgrid[0:128, 0:128]
    return Image.fromarray(np.stack([x * 2, y * 2, x + y], -1).astype(np.uint8))


def test_watermark_is_embedded_after_the_mark_and_detected(tmp_path: Path) -> None:
    if optional_label_module("watermark")[0] is None:
        pytest.skip("labels/watermark.py is not available")
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    labelled = apply_labels(Artifact("c-7", "image", _image(), "png"), LabelConfig(), context)
    assert labelled.labels["watermark"] == {"state": "embedded", "content_id": "c-7"}
    states = {f.kind: f.state for f in verify_bytes(labelled.data, "png", []).findings}
    assert states["watermark"] == "valid" and states["implicit"] == "present"


def test_a_missing_optional_module_is_recorded_not_fatal() -> None:
    module, reason = optional_label_module("no_such_label_kind")
    assert module is None and "not part of this build" in reason


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_c2pa_signed_last_keeps_the_gb45438_signature_valid(fmt: str, tmp_path: Path) -> None:
    module, reason = optional_label_module("c2pa")
    if module is None or not module.c2pa_available():
        pytest.skip(f"C2PA unavailable: {reason or 'c2pa-python not installed'}")
    from genloop.generate.labels.certificates import make_test_chain

    chain = make_test_chain(tmp_path / "chain")
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    config = LabelConfig(
        watermark=False, c2pa=True, c2pa_certificate=str(chain.certificate), c2pa_key=str(chain.key)
    )
    labelled = apply_labels(Artifact("c-8", "image", _image(), fmt), config, context)
    key = load_public_key(tmp_path / ".genloop" / "keys" / "aigc-ed25519.pub")
    states = {f.kind: f.state for f in verify_bytes(labelled.data, fmt, [key]).findings}
    assert states["c2pa"] == "valid" and states["implicit"] == "valid"
    # Filling the propagator later changes bytes the C2PA hard binding covers: verify says so.
    published = set_propagator(labelled.data, fmt, "gallery", "pub-1")
    states = {f.kind: f.state for f in verify_bytes(published, fmt, [key]).findings}
    assert states["implicit"] == "valid" and states["c2pa"] == "tampered"

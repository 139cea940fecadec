"""A label survives the post-processing chain that runs after it: the chain re-labels."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from tests.support.mnist import digit_png

from genloop.config import LabelConfig
from genloop.errors import DataError
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels
from genloop.generate.labels.signing import default_key_path, load_or_create_signer
from genloop.generate.labels.verify import verify_bytes
from genloop.generate.relabel import reprocess_image
from genloop.workspace import Workspace


def digit_artifact() -> Artifact:
    png, _ = digit_png(0)
    image = Image.open(io.BytesIO(png)).resize((256, 256), Image.Resampling.LANCZOS)
    return Artifact(content_id="c0ffee" * 5, modality="image", data=image, format="png")


def test_resize_and_jpeg_after_labelling_keep_every_label_valid(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    context = LabelContext(workspace, producer="genloop-test", model_version="digits-v3")
    config = LabelConfig()
    original = apply_labels(digit_artifact(), config, context)
    key_file = default_key_path(workspace.state_dir, "ed25519")  # created by the first label
    keys = [load_or_create_signer(key_file, "ed25519", create=False).public]

    # A plain re-encode loses the label: what the re-labelling is for.
    with Image.open(io.BytesIO(original.data)) as image:
        plain = io.BytesIO()
        image.convert("L").resize((128, 128)).save(plain, format="JPEG", quality=75)
    assert verify_bytes(plain.getvalue(), "jpeg", keys).exit_code == 2

    chain = [{"name": "resize", "size": 128}, {"name": "format", "format": "jpeg", "quality": 75}]
    result = reprocess_image(original.data, "png", chain, config=config, context=context)
    assert result.extension == ".jpg"
    report = verify_bytes(result.data, "jpeg", keys).as_dict()
    assert report["exit_code"] == 0, report
    assert report["labels"]["implicit"]["state"] == "valid"
    assert report["labels"]["implicit"]["AIGC"]["ProduceID"] == "c0ffee" * 5
    assert report["labels"]["watermark"]["state"] == "valid"  # the pixels' mark survived the chain


def test_a_file_without_a_label_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("L", (64, 64)).save(buffer, format="PNG")
    context = LabelContext(Workspace(tmp_path), producer="p", model_version="m")
    with pytest.raises(DataError, match="no readable AIGC label"):
        reprocess_image(buffer.getvalue(), "png", [], config=LabelConfig(), context=context)

import json

import numpy as np
from PIL import Image

from genloop.generate.labels.implicit import (
    AIGC_FIELDS,
    aigc_label,
    encode_png_with_label,
    read_implicit_label,
)


def test_label_has_every_gb45438_field_and_reads_back() -> None:
    label = aigc_label(producer="genloop", produce_id="abc123", model_version="digits-v1")
    assert tuple(label) == AIGC_FIELDS
    assert label["Label"] == "1"
    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L")
    data = encode_png_with_label(image, label)
    assert read_implicit_label(data) == label
    # The chunk is plain iTXt: any PNG reader sees it under the AIGC keyword.
    with Image.open(__import__("io").BytesIO(data)) as reopened:
        assert json.loads(reopened.text["AIGC"])["ProduceID"] == "abc123"
        assert np.array_equal(np.asarray(reopened), np.asarray(image))  # pixels untouched


def test_unlabelled_png_reads_as_none() -> None:
    import io

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    assert read_implicit_label(buffer.getvalue()) is None


def test_encoding_is_deterministic() -> None:
    image = Image.new("L", (4, 4), color=7)
    label = aigc_label(producer="p", produce_id="i", model_version="m")
    assert encode_png_with_label(image, label) == encode_png_with_label(image, label)

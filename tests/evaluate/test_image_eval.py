"""Evaluation of a trained model on real digits: likelihood, conditional accuracy, the cached classifier."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from sqlalchemy import select

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Evaluation, Run
from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.evaluate import evaluate_model
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import register_model_version
from genloop.workspace import Workspace

if TYPE_CHECKING:
    from .conftest import Trained

EVAL = EvaluateConfig(samples_per_class=30, samples=500, classifier_epochs=2, seed=0)


def register_untrained(workspace: Workspace, catalog: Catalog, run_id: str, tmp_path: Path) -> str:
    torch.manual_seed(0)
    ConditionalVAE(classes=[str(d) for d in range(10)], latent_dim=8, hidden_channels=16).save(
        tmp_path / "untrained"
    )
    return register_model_version(
        workspace, catalog, name="untrained", family="vae", run_id=run_id, weights_dir=tmp_path / "untrained"
    )


def test_metrics_of_a_trained_model(trained: Trained) -> None:
    result = evaluate_model(trained.workspace, trained.catalog, "digits", trained.dataset, EVAL)
    m = result.metrics
    assert (result.model_version_id, result.dataset_version_id) == (trained.version_id, trained.dataset.id)
    assert m["heldout_images"] == len(trained.dataset.records("test"))
    assert -250 < m["heldout_elbo"] < 0
    assert m["heldout_nll_bits_per_dim"] == pytest.approx(-m["heldout_elbo"] / (784 * 0.6931471805599453))
    assert m["classifier_test_accuracy"] > 0.75
    assert m["classifier"] == f"LeNet-style classifier trained on dataset {trained.dataset.id}"
    per_class = m["conditional_accuracy_per_class"]
    assert list(per_class) == trained.dataset.classes and m["samples_per_class"] == 30
    assert m["conditional_accuracy"] == pytest.approx(sum(per_class.values()) / 10)
    assert m["worst_class_accuracy"] == min(per_class.values())
    # chance is 10%: samples of the requested class are recognisably that class
    assert m["conditional_accuracy"] > 0.4, per_class
    with trained.catalog.session() as session:
        rows = session.scalars(
            select(Evaluation).where(Evaluation.model_version_id == trained.version_id)
        ).all()
        assert rows and rows[-1].metrics == m


def test_a_trained_model_beats_an_untrained_one(trained: Trained, tmp_path: Path) -> None:
    untrained = register_untrained(trained.workspace, trained.catalog, trained.run_id, tmp_path)
    before = evaluate_model(trained.workspace, trained.catalog, untrained, trained.dataset, EVAL).metrics
    after = evaluate_model(
        trained.workspace, trained.catalog, trained.version_id, trained.dataset, EVAL
    ).metrics
    assert after["heldout_elbo"] > before["heldout_elbo"] + 100  # nats per image
    assert after["conditional_accuracy"] > before["conditional_accuracy"]


def test_the_classifier_is_cached_per_dataset_and_reused(trained: Trained) -> None:
    evaluate_model(trained.workspace, trained.catalog, "digits", trained.dataset, EVAL)
    cache = trained.workspace.state_dir / "cache" / "classifiers" / trained.dataset.id
    weights = cache / "model.safetensors"
    assert (cache / "config.json").is_file() and weights.is_file()
    written = weights.stat().st_mtime_ns
    again = evaluate_model(trained.workspace, trained.catalog, "digits", trained.dataset, EVAL).metrics
    assert weights.stat().st_mtime_ns == written  # reused, not retrained
    other = evaluate_model(
        trained.workspace,
        trained.catalog,
        "digits",
        trained.dataset,
        EVAL.model_copy(update={"classifier_epochs": 1}),
    ).metrics
    assert weights.stat().st_mtime_ns != written  # other settings: trained again, replaced atomically
    assert json.loads((cache / "config.json").read_text())["epochs"] == 1  # the new settings' classifier
    assert other["classifier"] == again["classifier"]  # same dataset, so the same description
    assert not list(cache.parent.glob(".*partial"))


def test_evaluation_rows_on_each_catalog_backend(
    workspace: Workspace, make_digits: Callable[..., DatasetHandle], tmp_path: Path
) -> None:
    dataset = make_digits(workspace, per_class=8)
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="run-0", model_name="untrained", family="vae", config={}, path="/none"))
    version = register_untrained(workspace, catalog, "run-0", tmp_path)
    cfg = EvaluateConfig(samples_per_class=4, samples=40, classifier_epochs=1)
    result = evaluate_model(workspace, catalog, "untrained@champion", dataset, cfg)
    with catalog.session() as session:
        row = session.scalars(select(Evaluation)).one()
        assert (row.model_version_id, row.dataset_version_id) == (version, dataset.id)
        assert (
            row.metrics["conditional_accuracy_per_class"] == result.metrics["conditional_accuracy_per_class"]
        )

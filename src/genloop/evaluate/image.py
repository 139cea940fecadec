"""Evaluating an image model version against a dataset version.

Two questions, two kinds of metric:

* Does the model explain real held-out images?  `heldout_elbo`: the mean per-image
  ELBO in nats on the test split (a lower bound on log p(x | y); higher is better),
  and the same as `heldout_nll_bits_per_dim` (−ELBO / (C·H·W · ln 2), an upper bound
  on the negative log-likelihood in bits per pixel-channel; lower is better).
* Does it make what was asked for?  `conditional_accuracy`: `samples_per_class`
  samples of each class are judged by a LeNet-style classifier trained on the real
  train split; the mean over classes of the share classified as the requested class
  (higher is better), with each class's share and the worst class. The classifier's
  own accuracy on the real test split (`classifier_test_accuracy`) is the ceiling to
  read it against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genloop.catalog import Catalog
from genloop.catalog.models import Evaluation
from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, GenloopError
from genloop.evaluate.classifier import Classifier, real_data_classifier
from genloop.models.versions import LoadedModel, load_model_version
from genloop.train.images import image_tensors
from genloop.workspace import Workspace

BATCH = 512


@dataclass(frozen=True)
class EvaluationResult:
    model_version_id: str
    dataset_version_id: str
    metrics: dict[str, Any]


def evaluate_model(
    workspace: Workspace, catalog: Catalog, model_ref: str, dataset: DatasetHandle, cfg: EvaluateConfig
) -> EvaluationResult:
    """Evaluate `model_ref` ("digits-v2", "digits@challenger", "digits") on `dataset`; store the result.

    Metrics: heldout_elbo (nats per image, higher is better), heldout_nll_bits_per_dim
    (lower is better), classifier_test_accuracy, conditional_accuracy,
    conditional_accuracy_per_class {label: share}, worst_class_accuracy,
    samples_per_class, classifier (description), heldout_images.
    """
    loaded = load_model_version(workspace, catalog, model_ref)
    if not hasattr(loaded.model, "elbo"):
        raise GenloopError(
            f"{loaded.version_id} is a {loaded.family!r} model; image evaluation needs an ELBO (likelihood)",
            hint="evaluate a vae model version",
        )
    metrics = _heldout_metrics(loaded, dataset, cfg.seed)
    classifier = real_data_classifier(
        workspace,
        dataset,
        classes=loaded.classes,
        image_size=int(loaded.config["image_size"]),
        channels=int(loaded.config["channels"]),
        epochs=cfg.classifier_epochs,
        seed=cfg.seed,
    )
    metrics.update(_conditional_metrics(loaded, classifier, cfg))
    with catalog.session() as session:
        session.add(
            Evaluation(model_version_id=loaded.version_id, dataset_version_id=dataset.id, metrics=metrics)
        )
    return EvaluationResult(loaded.version_id, dataset.id, metrics)


@torch.no_grad()
def _heldout_metrics(loaded: LoadedModel, dataset: DatasetHandle, seed: int) -> dict[str, Any]:
    """Mean per-image ELBO (β = 1) over the test records whose label the model knows."""
    records = [r for r in dataset.iter_records("test") if r.label in loaded.classes]
    if not records:
        raise DataError(
            f"dataset {dataset.id} has no test records with one of the model's classes {loaded.classes}",
            hint="hold out part of the data ([collect].test_fraction > 0) and rebuild the dataset",
        )
    x, y = image_tensors(
        records,
        classes=loaded.classes,
        image_size=int(loaded.config["image_size"]),
        channels=int(loaded.config["channels"]),
        what=f"dataset {dataset.id} (test split)",
    )
    generator = torch.Generator().manual_seed(seed)  # the same posterior noise on every evaluation
    model: Any = loaded.model
    elbo = torch.cat(
        [
            model.elbo(xb, yb, generator=generator)
            for xb, yb in zip(x.split(BATCH), y.split(BATCH), strict=True)
        ]
    )  # (N,) nats per image
    mean_elbo = float(elbo.mean())
    return {
        "heldout_elbo": mean_elbo,
        "heldout_nll_bits_per_dim": float(model.bits_per_dim(-mean_elbo)),
        "heldout_images": len(records),
    }


@torch.no_grad()
def _conditional_metrics(loaded: LoadedModel, classifier: Classifier, cfg: EvaluateConfig) -> dict[str, Any]:
    """Share of each class's samples that the real-data classifier assigns to that class."""
    per_class: dict[str, float] = {}
    for index, label in enumerate(loaded.classes):
        condition = torch.full((cfg.samples_per_class,), index, dtype=torch.long)
        samples = loaded.model.sample(cfg.samples_per_class, condition, seed=cfg.seed + index)  # type: ignore[operator]
        per_class[label] = float((classifier.model.predict(samples) == index).float().mean())
    return {
        "conditional_accuracy": sum(per_class.values()) / len(per_class),
        "conditional_accuracy_per_class": per_class,
        "worst_class_accuracy": min(per_class.values()),
        "samples_per_class": cfg.samples_per_class,
        "classifier_test_accuracy": classifier.test_accuracy,
        "classifier": classifier.description,
    }

"""The real data in the classifier's feature space, computed once per dataset + classifier.

    train (N, 128), train_labels (N,)    LeNet.embed of the train split (the model's classes)
    test  (M, 128), test_labels  (M,)    the same for the test split
    test_distances (M,)                  each test vector's distance to its nearest train vector
                                         (the memorisation baseline)

Stored at `.genloop/cache/real_features/DATASET_ID/` (features.safetensors + config.json,
written atomically) and reused while the classifier's config (its settings and test accuracy,
which change whenever it is retrained) matches; 60k × 128 float32 features are 31 MB.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError
from genloop.evaluate.classifier import Classifier
from genloop.evaluate.memorisation import nearest_training_distances
from genloop.storage import atomic_directory, atomic_write_bytes, atomic_write_json
from genloop.train.images import image_tensors
from genloop.workspace import Workspace


@dataclass(frozen=True)
class RealFeatures:
    train: torch.Tensor  # (N, D) float32
    train_labels: torch.Tensor  # (N,) class indices
    test: torch.Tensor  # (M, D) float32
    test_labels: torch.Tensor  # (M,)
    test_distances: torch.Tensor  # (M,) float64, test → nearest train


def real_features(workspace: Workspace, dataset: DatasetHandle, classifier: Classifier) -> RealFeatures:
    """The cached real features of `dataset` under `classifier`, computed first when missing."""
    key = {"classifier": classifier.config}
    directory = workspace.path("cache", "real_features", dataset.id)
    cached = _load(directory, key)
    if cached is not None:
        return cached
    computed = _compute(dataset, classifier)
    with atomic_directory(directory) as staging:
        tensors = {
            "train": computed.train.contiguous(),
            "train_labels": computed.train_labels.contiguous(),
            "test": computed.test.contiguous(),
            "test_labels": computed.test_labels.contiguous(),
            "test_distances": computed.test_distances.contiguous(),
        }
        atomic_write_bytes(staging / "features.safetensors", safetensors_bytes(tensors))
        atomic_write_json(staging / "config.json", key)
    return computed


def _load(directory: Path, key: dict[str, Any]) -> RealFeatures | None:
    try:
        stored = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if stored != json.loads(json.dumps(key)):
            return None  # another classifier: recompute (and replace)
        t = load_file(directory / "features.safetensors")
        return RealFeatures(t["train"], t["train_labels"], t["test"], t["test_labels"], t["test_distances"])
    except Exception:  # missing or unreadable: simply recomputed
        return None


def _compute(dataset: DatasetHandle, classifier: Classifier) -> RealFeatures:
    settings = classifier.config
    classes = list(settings["classes"])

    def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = image_tensors(
            (r for r in dataset.iter_records(name) if r.label in classes),
            classes=classes,
            image_size=int(settings["image_size"]),
            channels=int(settings["channels"]),
            what=f"dataset {dataset.id} ({name} split)",
        )
        return classifier.model.embed(x).float(), y.long()

    train, train_labels = split("train")
    test, test_labels = split("test")
    if len(train) < 2 or len(test) < 2:
        raise DataError(
            f"dataset {dataset.id} has {len(train)} train and {len(test)} test images of the classes "
            f"{classes}; image metrics need at least 2 of each (the real-vs-real floor compares them)",
            hint="hold out part of the data ([collect].test_fraction > 0) and rebuild the dataset",
        )
    distances = nearest_training_distances(test, train, what="real test-split features")
    return RealFeatures(train, train_labels, test, test_labels, distances)

"""A small image reward model trained on feedback: like (1) vs dislike (0) from classifier features.

    image (N, C, H, W) in [0, 1] ─► the evaluate stage's LeNet.embed (128 features, frozen)
        ─► standardise (train mean/std) ─► logistic regression, or one hidden layer (`hidden` > 0)
        ─► logit r(x): higher = more likely to be liked

Training minimises Σ wᵢ · BCE(r(xᵢ), yᵢ) + weight decay, with wᵢ = |scoreᵢ| (the event
weights of `feedback_data`), normalised to mean 1. Records are split by their content
hash (`test_fraction` held out) and held-out accuracy and AUC are reported.

Saved as a folder beside the feedback dataset (`<dataset>/../<dataset id>.reward/`):
`reward.pt` (the head and the classifier's weights) and `config.json` (features,
classifier settings, training settings, metrics): the config travels with the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, NotFoundError
from genloop.evaluate.classifier import Classifier, LeNet, latest_cached_classifier
from genloop.storage import atomic_directory
from genloop.train.images import decode_image
from genloop.workspace import Workspace

FEATURES = "lenet-embed-128"


class RewardModel(nn.Module):
    """Frozen classifier features → a standardised linear (or one-hidden-layer) like-logit."""

    def __init__(self, classifier: Classifier, *, hidden: int = 0) -> None:
        super().__init__()
        self.classifier_config = dict(classifier.config)
        self.features = classifier.model
        self.image_size = int(classifier.config["image_size"])
        self.channels = int(classifier.config["channels"])
        self.hidden = hidden
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(128))
        self.register_buffer("std", torch.ones(128))
        self.head: nn.Module = (
            nn.Sequential(nn.Linear(128, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            if hidden
            else nn.Linear(128, 1)
        )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] → (N, 128), resized to the classifier's input size first."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear")
        if images.shape[1] != self.channels:
            images = images.mean(1, keepdim=True) if self.channels == 1 else images.expand(-1, 3, -1, -1)
        return self.features.embed(images.float())

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The reward (a like-logit) of each image: (N,)."""
        self.eval()
        return self.logits_from_features(self.embed(images.cpu()))


@dataclass(frozen=True)
class RewardReport:
    train_records: int
    test_records: int
    heldout_accuracy: float | None
    heldout_auc: float | None
    train_accuracy: float


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """P(score of a random positive > score of a random negative), ties count ½ (Mann–Whitney)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def preference_tensors(
    dataset: DatasetHandle, *, image_size: int, channels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Image records of a preference dataset → (x, y like=1, weight, record ids)."""
    xs, ys, ws, ids = [], [], [], []
    for record in dataset.iter_records():
        if record.modality != "image" or record.meta.get("reaction") not in ("like", "dislike"):
            continue
        xs.append(decode_image(record, image_size=image_size, channels=channels))
        ys.append(1.0 if record.meta["reaction"] == "like" else 0.0)
        ws.append(float(record.meta.get("weight", 1.0)))
        ids.append(record.id)
    if not xs:
        raise DataError(
            f"dataset {dataset.id} has no liked or disliked images to train a reward model on",
            hint="build it with genloop.improve.feedback_data.preference_dataset after collecting feedback",
        )
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.tensor(ys), torch.tensor(ws), ids


def train_reward_model(
    dataset: DatasetHandle,
    classifier: Classifier,
    *,
    hidden: int = 0,
    steps: int = 300,
    learning_rate: float = 0.05,
    weight_decay: float = 1e-3,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[RewardModel, RewardReport]:
    """Fit a reward model on a preference dataset's liked/disliked images (full-batch Adam)."""
    size, channels = int(classifier.config["image_size"]), int(classifier.config["channels"])
    x, y, w, ids = preference_tensors(dataset, image_size=size, channels=channels)
    if len(set(y.tolist())) < 2:
        raise DataError(
            f"dataset {dataset.id} holds only {'likes' if y[0] == 1 else 'dislikes'}: "
            "a reward model needs both reactions",
            hint="collect more feedback (a dislike or a low rating counts as negative)",
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RewardModel(classifier, hidden=hidden)
    features = model.embed(x)
    held = torch.tensor([int(i[:8], 16) / 0xFFFFFFFF < test_fraction for i in ids])
    if held.all() or not held.any():
        held = torch.zeros(len(ids), dtype=torch.bool)
    train = ~held
    mean, std = features[train].mean(0), features[train].std(0).clamp_min(1e-4)
    model.mean.copy_(mean)
    model.std.copy_(std)
    weights = w[train] / w[train].mean()
    optimizer = torch.optim.Adam(model.head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for _ in range(steps):
        logits = model.logits_from_features(features[train])
        loss = (F.binary_cross_entropy_with_logits(logits, y[train], reduction="none") * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = model.logits_from_features(features)
    predicted = (logits > 0).float()
    heldout_acc = float((predicted[held] == y[held]).float().mean()) if held.any() else None
    report = RewardReport(
        int(train.sum()),
        int(held.sum()),
        heldout_acc,
        auc(logits[held].numpy(), y[held].numpy()) if held.any() else None,
        float((predicted[train] == y[train]).float().mean()),
    )
    return model.eval(), report


def reward_dir(dataset: DatasetHandle) -> Path:
    """Where a dataset's reward model lives: beside it, `<datasets>/<name>/<id>.reward/`."""
    return dataset.path.parent / f"{dataset.id}.reward"


def save_reward_model(model: RewardModel, report: RewardReport, dataset: DatasetHandle) -> Path:
    config: dict[str, Any] = {
        "kind": "reward",
        "features": FEATURES,
        "hidden": model.hidden,
        "classifier": model.classifier_config,
        "dataset_id": dataset.id,
        "metrics": report.__dict__,
    }
    target = reward_dir(dataset)
    with atomic_directory(target) as staging:
        torch.save(model.state_dict(), staging / "reward.pt")
        (staging / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    return target


def load_reward_model(directory: Path) -> RewardModel:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise NotFoundError(
            f"no reward model at {directory} (config.json missing)",
            hint="train one with genloop.improve.reward.train_reward_model and save_reward_model",
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    settings = config["classifier"]
    lenet = LeNet(channels=int(settings["channels"]), num_classes=len(settings["classes"]))
    model = RewardModel(Classifier(lenet, settings), hidden=int(config["hidden"]))
    model.load_state_dict(torch.load(directory / "reward.pt", weights_only=True))
    return model.eval()


def workspace_classifier(workspace: Workspace) -> Classifier:
    """The evaluate stage's most recent classifier: the reward's feature extractor."""
    classifier = latest_cached_classifier(workspace)
    if classifier is None:
        raise NotFoundError(
            "the workspace has no trained classifier to take reward features from",
            hint="run `genloop evaluate` once (it trains and caches the classifier)",
        )
    return classifier

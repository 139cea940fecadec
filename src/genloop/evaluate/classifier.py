"""A small LeNet-style classifier trained on a dataset version's real train split.

It judges generated images: a conditional sample of class k should be classified as
k (LeCun et al. 1998, http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf, with ReLU,
max-pooling and wider layers). Cached per dataset version at
`.genloop/cache/classifiers/DATASET_ID/` (model.safetensors + config.json, written
atomically) and reused while its settings (classes, image size, channels, epochs,
seed, recipe) match; its own test accuracy is in the config. Training: Adam with a cosine
decay; a small train split gets at least MIN_STEPS_PER_EPOCH batches per epoch and random
shifts of ±2 px.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError
from genloop.progress import stage_progress
from genloop.storage import atomic_directory, atomic_write_bytes, atomic_write_json
from genloop.train.images import image_tensors
from genloop.workspace import Workspace

BATCH_SIZE = 32
LEARNING_RATE = 2e-3
MIN_STEPS_PER_EPOCH = 500
"""A small dataset's epoch is stretched to this many batches (drawn again in a new order): 2
epochs of mnist-5k's 4,500 digits are 282 steps and score ≈ 0.975 on its test split (3 seeds);
1,000 steps with random shifts and the cosine decay score ≈ 0.983 (benchmarks/classifier_accuracy.py)."""
MAX_SHIFT = 2  # pixels: each training image is moved by up to this much in x and y (augmentation)
RECIPE = 2  # bumped when the training changes, so cached classifiers of an older recipe are retrained


class LeNet(nn.Module):
    """conv5 (16) → pool → conv5 (32) → pool → fc (128) → fc: (B, C, H, W) → class logits (B, K)."""

    def __init__(self, *, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 16, H/2, W/2)
            nn.Conv2d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, H/4, W/4)
            nn.AdaptiveAvgPool2d(7),  # (B, 32, 7, 7) whatever the image size (28 → 7 already)
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 49, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class indices (N,) for images (N, C, H, W) in [0, 1]."""
        self.eval()
        device = next(self.parameters()).device
        return torch.cat([self(chunk.to(device)).argmax(1).cpu() for chunk in x.split(batch_size)])

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Penultimate activations (N, 128) for images (N, C, H, W) in [0, 1].

        The feature space of the Fréchet distance, KID, precision/recall, memorisation
        and diversity metrics (`self.features` is the conv stack; this adds fc + ReLU).
        """
        self.eval()
        device = next(self.parameters()).device
        penultimate = self.head[:-1]  # Flatten → Linear(32·49, 128) → ReLU
        chunks = [penultimate(self.features(chunk.to(device))).cpu() for chunk in x.split(batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, 128)


@dataclass(frozen=True)
class Classifier:
    model: LeNet
    config: dict[str, Any]

    @property
    def test_accuracy(self) -> float | None:
        value = self.config.get("test_accuracy")
        return None if value is None else float(value)

    @property
    def description(self) -> str:
        return f"LeNet-style classifier trained on dataset {self.config['dataset_id']}"


def accuracy(model: LeNet, x: torch.Tensor, y: torch.Tensor) -> float | None:
    return float((model.predict(x) == y.cpu()).float().mean()) if len(x) else None


def real_data_classifier(
    workspace: Workspace,
    dataset: DatasetHandle,
    *,
    classes: list[str],
    image_size: int,
    channels: int,
    epochs: int,
    seed: int = 0,
) -> Classifier:
    """The cached classifier for `dataset` with these settings, trained first when missing."""
    settings = {
        "dataset_id": dataset.id,
        "classes": list(classes),
        "image_size": image_size,
        "channels": channels,
        "epochs": epochs,
        "seed": seed,
        "recipe": RECIPE,
    }
    directory = workspace.path("cache", "classifiers", dataset.id)
    cached = _load(directory, settings)
    if cached is not None:
        return cached
    classifier = _train(dataset, settings)
    with atomic_directory(directory) as staging:
        state = {k: v.detach().cpu().contiguous() for k, v in classifier.model.state_dict().items()}
        atomic_write_bytes(staging / "model.safetensors", safetensors_bytes(state))
        atomic_write_json(staging / "config.json", classifier.config)
    return classifier


def _load(directory: Path, settings: dict[str, Any]) -> Classifier | None:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        if {key: config.get(key) for key in settings} != settings:
            return None  # trained with other settings: retrain (and replace)
        model = LeNet(channels=settings["channels"], num_classes=len(settings["classes"]))
        model.load_state_dict(load_file(directory / "model.safetensors"))
    except Exception:  # a missing or unreadable cache (any error) is simply rebuilt
        return None
    return Classifier(model.eval(), config)


def _epoch_batches(count: int, batches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`batches` batches of row indices: whole shuffled passes over the data until there are enough."""
    order = torch.cat(
        [torch.randperm(count, generator=generator) for _ in range(-(-batches * BATCH_SIZE // count))]
    )
    return list(order.split(BATCH_SIZE))[:batches]


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) moved by its own random offset in [−MAX_SHIFT, MAX_SHIFT]², zero-filled."""
    n, channels, height, width = x.shape
    padded = F.pad(x, (MAX_SHIFT,) * 4)  # (B, C, H + 2s, W + 2s)
    dy = torch.randint(0, 2 * MAX_SHIFT + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * MAX_SHIFT + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(width))[:, None, None, :]  # (B, 1, 1, W)
    return padded[
        torch.arange(n)[:, None, None, None], torch.arange(channels)[None, :, None, None], rows, cols
    ]


def _train(dataset: DatasetHandle, settings: dict[str, Any]) -> Classifier:
    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return image_tensors(
            (r for r in dataset.iter_records(split) if r.label in settings["classes"]),
            classes=settings["classes"],
            image_size=settings["image_size"],
            channels=settings["channels"],
            what=f"dataset {dataset.id} ({split} split)",
        )

    train_x, train_y = tensors("train")
    if len(train_x) == 0:
        raise DataError(f"dataset {dataset.id} has no labelled train records to train a classifier on")
    test_x, test_y = tensors("test")
    generator = torch.Generator().manual_seed(settings["seed"])
    with torch.random.fork_rng():  # the classifier's seed must not disturb the caller's RNG
        torch.manual_seed(settings["seed"])
        model = LeNet(channels=settings["channels"], num_classes=len(settings["classes"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    natural = -(-len(train_x) // BATCH_SIZE)
    per_epoch = max(natural, MIN_STEPS_PER_EPOCH)
    # shifts help a small set seen many times (mnist-5k: +0.6 points); on a large set in 2 epochs
    # they only slow learning (Fashion-MNIST 60k: 0.903 → 0.893), so only a stretched epoch gets them
    augment = per_epoch > natural
    steps = settings["epochs"] * per_epoch
    step = 0
    with stage_progress("classifier", total=steps) as advance:
        for _epoch in range(settings["epochs"]):
            model.train()
            for rows in _epoch_batches(len(train_x), per_epoch, generator):
                # cosine decay to 0 over the whole run: lr_t = lr · ½ (1 + cos(π t / T))
                for group in optimizer.param_groups:
                    group["lr"] = LEARNING_RATE * 0.5 * (1.0 + math.cos(math.pi * step / steps))
                batch = random_shift(train_x[rows], generator) if augment else train_x[rows]
                loss = F.cross_entropy(model(batch), train_y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                advance(1, loss=f"{float(loss.detach()):.3f}")
    config = {
        **settings,
        "kind": "lenet",
        "train_records": len(train_x),
        "test_records": len(test_x),
        "test_accuracy": accuracy(model, test_x, test_y),
    }
    return Classifier(model.eval(), config)


def latest_cached_classifier(workspace: Workspace) -> Classifier | None:
    """The most recently trained cached classifier of the workspace (any dataset), or None."""
    root = workspace.path("cache", "classifiers")
    candidates = sorted(root.glob("*/config.json"), key=lambda path: path.stat().st_mtime, reverse=True)
    for config_file in candidates:
        try:
            settings = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        keys = ("dataset_id", "classes", "image_size", "channels", "epochs", "seed", "recipe")
        loaded = _load(config_file.parent, {key: settings.get(key) for key in keys})
        if loaded is not None:
            return loaded
    return None


def image_recogniser(classifier: Classifier) -> Callable[[Image.Image], dict[str, float]]:
    """An image → class probabilities, as the classifier sees it (resized to its input size)."""
    size, channels = int(classifier.config["image_size"]), int(classifier.config["channels"])
    classes = [str(name) for name in classifier.config["classes"]]

    @torch.no_grad()
    def recognise(image: Image.Image) -> dict[str, float]:
        converted = image.convert("L" if channels == 1 else "RGB").resize(
            (size, size), Image.Resampling.LANCZOS
        )
        array = np.asarray(converted, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).reshape(size, size, channels).permute(2, 0, 1).unsqueeze(0)
        probabilities = torch.softmax(classifier.model(tensor), dim=1)[0]
        return {name: float(p) for name, p in zip(classes, probabilities, strict=True)}

    return recognise

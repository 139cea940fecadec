"""Test support for test_image_recipes.py: a tiny trained digit VAE, a planted "bold strokes"
audience and its reward model, built once per module.

The model sees 0s and 1s under one label ("digit"); the persona likes a sample when its ink
(mean pixel) is above the median of the published batch, and dislikes it otherwise — bold
strokes, which here mostly means 0s. The models never see the preference, only its events.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, Publication
from genloop.catalog.session import close_all
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.evaluate.classifier import Classifier, LeNet
from genloop.improve.feedback_data import Preferences, preference_dataset
from genloop.improve.image_recipes import png_bytes, sample_per_class
from genloop.improve.reward import RewardModel, RewardReport, train_reward_model
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.images import image_tensors
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.mnist import mnist_pngs

DIGITS = ["0", "1"]
LABEL = "digit"
CONFIG = """
[project]
name = "digits"

[train]
family = "vae"
epochs = 4
batch_size = 32
learning_rate = 3e-3
latent_dim = 4
hidden_channels = 8
image_size = 16
checkpoint_every_steps = 1000
grid_per_class = 2
tensorboard = false

[improve]
epochs = 3
learning_rate = 3e-3
"""
NO_CHECKS: dict[str, list[str]] = {"image": [], "text": []}


def ink(images: torch.Tensor) -> torch.Tensor:
    """The hidden preference: mean pixel of each image (N,)."""
    return images.flatten(1).mean(1)


@dataclass
class Loop:
    workspace: Workspace
    catalog: Catalog
    data: DatasetHandle
    champion: str
    classifier: Classifier
    preferences: Preferences
    reward: RewardModel
    report: RewardReport


def _classifier(data: DatasetHandle) -> Classifier:
    """A LeNet trained briefly on the digits at 16 px (the evaluate stage's model, fewer steps)."""
    records = [r.with_changes(label=r.meta["digit"]) for r in data.iter_records("train")]
    x, y = image_tensors(records, classes=DIGITS, image_size=16, channels=1, what="digits")
    torch.manual_seed(0)
    model = LeNet(channels=1, num_classes=len(DIGITS))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(40):
        rows = torch.arange(step * 16, step * 16 + 16) % len(x)
        loss = F.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    config = {"dataset_id": data.id, "classes": DIGITS, "image_size": 16, "channels": 1, "kind": "lenet"}
    return Classifier(model.eval(), config)


def _plant_feedback(loop_ws: Workspace, catalog: Catalog, champion: str, per_class: int) -> None:
    loaded = load_model_version(loop_ws, catalog, champion)
    x, _ = sample_per_class(loaded.model, loaded, per_class, seed=1)
    scores = ink(x)
    median = scores.median()
    with catalog.session() as s:
        for i, image in enumerate(x):
            path = loop_ws.path("content", f"c{i:03d}.png")
            path.write_bytes(png_bytes(image))
            s.add(ContentItem(id=f"c{i:03d}", model_version_id=champion, modality="image",
                              path=loop_ws.relative(path), condition={"label": LABEL}, seed=i,
                              params={}, labels={}))  # fmt: skip
        s.flush()
        for i in range(len(x)):
            s.add(Publication(id=f"p{i:03d}", content_item_id=f"c{i:03d}", channel="gallery"))
        s.flush()
        for i, score in enumerate(scores):
            kind = "like" if score > median else "dislike"
            s.add(FeedbackEvent(publication_id=f"p{i:03d}", kind="impression", viewer_id="persona"))
            s.add(FeedbackEvent(publication_id=f"p{i:03d}", kind=kind, viewer_id="persona",
                                created_at=datetime.now(UTC)))  # fmt: skip


@pytest.fixture(scope="module", name="loop")
def loop_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root: Path = tmp_path_factory.mktemp("improve") / "ws"
    root.mkdir()
    (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
    saved = {k: os.environ.get(k) for k in (DATABASE_URL_ENV, "GENLOOP_NUM_THREADS")}
    os.environ.pop(DATABASE_URL_ENV, None)
    os.environ["GENLOOP_NUM_THREADS"] = "1"
    try:
        ws = Workspace(root)
        catalog = open_catalog(ws.database_url)
        records = [
            Record.create(
                png,
                modality="image",
                label=LABEL,
                source="mnist-5k",
                license="CC-BY-SA-3.0",
                test_fraction=0.2,
                meta={"digit": label},
            )
            for png, label in mnist_pngs(60)
            if label in DIGITS
        ]
        data = write_dataset_version(ws, catalog, records, name="digits", stage="annotate", classes=[LABEL])
        champion = train_model(ws, catalog, data, ws.config.train, model_name="digits").model_version_id
        classifier = _classifier(data)
        _plant_feedback(ws, catalog, champion, per_class=80)
        prefs = preference_dataset(ws, catalog, "digits", safety=NO_CHECKS)
        assert prefs.dataset is not None
        reward, report = train_reward_model(prefs.dataset, classifier)
        yield Loop(ws, catalog, data, champion, classifier, prefs, reward, report)
    finally:
        close_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

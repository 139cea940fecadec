"""`improve_model` on an image model: a persona that likes one digit class (1s, dislikes 0s) →
the auto recipe (reward-weighted) trains a reward model on the evaluate classifier's features
and registers a challenger whose class prior asks for 1s more often."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication, RunDataset
from genloop.catalog.session import close_all
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import GenloopError
from genloop.improve.dispatch import auto_recipe, improve_model, plan_improvement
from genloop.improve.feedback_data import collect_preferences
from genloop.improve.image_recipes import png_bytes, sample_per_class
from genloop.models.label_prior import draw_labels, read_label_prior
from genloop.models.versions import load_model_version, resolve_model_version
from genloop.train import train_model
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.mnist import mnist_pngs

DIGITS = ["0", "1"]
LIKED = "1"
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

[evaluate]
classifier_epochs = 1

[improve]
epochs = 1
learning_rate = 3e-3
samples_per_class = 16
reward_beta = 1.0
evaluate = false

[channels.gallery]
safety = {image = []}
"""


@dataclass
class Digits:
    workspace: Workspace
    catalog: Catalog
    data: DatasetHandle
    champion: str


def _plant_feedback(ws: Workspace, catalog: Catalog, champion: str, per_class: int) -> None:
    """The persona likes every published 1 and dislikes every 0 (it sees the images, not labels)."""
    loaded = load_model_version(ws, catalog, champion)
    x, y = sample_per_class(loaded.model, loaded, per_class, seed=1)
    with catalog.session() as s:
        for i, (image, cls) in enumerate(zip(x, y.tolist(), strict=True)):
            path = ws.path("content", f"d{i:03d}.png")
            path.write_bytes(png_bytes(image))
            s.add(ContentItem(id=f"d{i:03d}", model_version_id=champion, modality="image",
                              path=ws.relative(path), condition={"label": DIGITS[cls]}, seed=i,
                              params={}, labels={}))  # fmt: skip
        s.flush()
        for i in range(len(x)):
            s.add(Publication(id=f"q{i:03d}", content_item_id=f"d{i:03d}", channel="gallery"))
        s.flush()
        for i, cls in enumerate(y.tolist()):
            kind = "like" if DIGITS[cls] == LIKED else "dislike"
            s.add(FeedbackEvent(publication_id=f"q{i:03d}", kind="impression", viewer_id="persona"))
            s.add(FeedbackEvent(publication_id=f"q{i:03d}", kind=kind, viewer_id="persona",
                                created_at=datetime.now(UTC)))  # fmt: skip


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Digits]:
    root: Path = tmp_path_factory.mktemp("dispatch-images") / "ws"
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
                label=label,
                source="mnist-5k",
                license="CC-BY-SA-3.0",
                test_fraction=0.2,
            )
            for png, label in mnist_pngs(60)
            if label in DIGITS
        ]
        data = write_dataset_version(ws, catalog, records, name="digits", stage="annotate", classes=DIGITS)
        champion = train_model(ws, catalog, data, ws.config.train, model_name="digits").model_version_id
        _plant_feedback(ws, catalog, champion, per_class=24)
        yield Digits(ws, catalog, data, champion)
    finally:
        close_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_auto_recipe_registers_a_challenger_whose_prior_favours_the_liked_class(digits: Digits) -> None:
    ws, catalog, config = digits.workspace, digits.catalog, digits.workspace.config
    plan = plan_improvement(ws, catalog, config)
    assert (plan.recipe, plan.champion, plan.feedback_events) == ("reward-weighted", digits.champion, 96)
    assert plan.counts["positives"] == plan.counts["negatives"] == 24

    outcome = improve_model(ws, catalog, config, seed=3)
    assert outcome.recipe == "reward-weighted" and outcome.champion == digits.champion
    assert resolve_model_version(catalog, "digits@challenger") == outcome.challenger != digits.champion
    # the reward model tells the liked class from the other on held-out feedback, and is saved
    assert outcome.details["reward_auc"] is not None and outcome.details["reward_auc"] > 0.9
    assert ws.root.joinpath(outcome.details["reward_model"], "config.json").is_file()
    # p(y) moved toward the liked class, and unconditional draws ask for 1s more often
    prior = outcome.details["challenger_prior"]
    challenger = load_model_version(ws, catalog, outcome.challenger)
    assert read_label_prior(challenger.path, DIGITS) == pytest.approx(prior)
    assert prior[LIKED] > 0.6 > prior["0"], prior
    assert draw_labels(prior, 200, seed=0).count(LIKED) > 120
    # lineage: parent = champion, the preference dataset as the run's feedback
    with catalog.session() as s:
        version = s.get(ModelVersion, outcome.challenger)
        assert version is not None and version.parent_id == digits.champion
        roles = {r.role: r.dataset_version_id for r in s.scalars(
            select(RunDataset).where(RunDataset.run_id == version.run_id))}  # fmt: skip
    assert roles["feedback"] == outcome.feedback_dataset and roles["train"] == digits.data.id
    assert outcome.champion_metrics is None  # [improve].evaluate = false


def test_a_text_recipe_for_an_image_model_names_the_ones_that_fit(digits: Digits) -> None:
    config = digits.workspace.config
    wrong = config.model_copy(update={"improve": config.improve.model_copy(update={"recipe": "dpo"})})
    with pytest.raises(GenloopError, match="'dpo' does not fit 'vae'") as error:
        improve_model(digits.workspace, digits.catalog, wrong)
    assert "liked, reward-weighted, rejection-sampling" in (error.value.hint or "")


def test_auto_fine_tunes_on_liked_items_until_there_are_dislikes_to_learn_a_reward_from(
    digits: Digits,
) -> None:
    found = collect_preferences(digits.workspace, digits.catalog, "digits", safety={"image": []})
    assert auto_recipe("vae", found) == "reward-weighted"
    assert auto_recipe("vae", replace(found, negatives=[])) == "liked"

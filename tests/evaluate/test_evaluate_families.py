"""`genloop evaluate` on every model family, each a tiny model trained on real data (digits,
fortunes, Shakespeare, Bach chorales), and the errors of input it cannot measure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import Evaluation
from genloop.config import EvaluateConfig, TrainConfig
from genloop.data.datasets import write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError, GenloopError
from genloop.evaluate import evaluate_model, evaluator_for, summary_lines
from genloop.evaluate.classifier import real_data_classifier
from genloop.evaluate.frechet import frechet_distance
from genloop.evaluate.image import generated_features
from genloop.evaluate.real_features import real_features
from genloop.evaluate.text import sample_metrics
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.workspace import Workspace
from support.chorales import chorale_dataset
from support.mnist import MakeDigits, mnist_pngs
from support.text import fortune_texts, text_dataset
from support.tiny_causal_lm import shakespeare_lines, tiny_causal_lm

IMAGES = EvaluateConfig(samples=60, samples_per_class=4, classifier_epochs=1, seed=0)
TEXTS = EvaluateConfig(text_samples=4, max_new_tokens=24, verbatim_ngram=4, seed=0)
IMAGE_KEYS = {
    "samples", "feature_network", "fd", "fd_real_floor", "kid", "kid_std", "precision", "recall",
    "memorisation_share", "memorisation_expected", "diversity", "diversity_real", "classifier_test_accuracy",
}  # fmt: skip


def test_an_unconditional_gan_gets_distribution_metrics_and_class_shares(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=10)
    catalog = open_catalog(workspace.database_url)
    cfg = TrainConfig(family="gan", preset="tiny", grid_per_class=1, model={"conditioning": "none"})
    trained = train_model(workspace, catalog, dataset, cfg, model_name="gan")

    m = evaluate_model(workspace, catalog, trained.model_version_id, dataset, IMAGES).metrics
    assert set(m) >= IMAGE_KEYS and m["modality"] == "image" and m["family"] == "gan"
    assert m["samples"] == 60 and m["feature_network"] == f"LeNet-style features trained on {dataset.id}"
    assert m["fd"] > m["fd_real_floor"] >= 0 and 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
    assert "heldout_elbo" not in m and "conditional_accuracy" not in m  # no likelihood, no condition
    assert set(m["class_share"]) == set(dataset.classes) and sum(m["class_share"].values()) == pytest.approx(
        1
    )
    assert 0 <= m["class_share_tv"] <= 1
    headline, details = summary_lines(m)
    assert headline.startswith(f"FD {m['fd']:.2f} (real-vs-real floor {m['fd_real_floor']:.2f})")
    assert "LeNet-style features" in details[0]

    # FD is exactly frechet_distance on the same features (regenerated with the same seed)
    loaded = load_model_version(workspace, catalog, trained.model_version_id)
    classifier = real_data_classifier(
        workspace, dataset, classes=dataset.classes, image_size=28, channels=1, epochs=1, seed=0
    )
    features, _ = generated_features(loaded, classifier, 60, seed=0, conditional=False)
    real = real_features(workspace, dataset, classifier)
    assert m["fd"] == pytest.approx(frechet_distance(features, real.train), rel=1e-9)
    cached = workspace.state_dir / "cache" / "real_features" / dataset.id / "features.safetensors"
    assert cached.is_file()


def test_a_class_conditional_ddpm_gets_per_class_fd_and_conditional_accuracy(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=8)
    catalog = open_catalog(workspace.database_url)
    unet = {"block_channels": [8, 16], "attention_levels": [], "train_timesteps": 50, "sample_steps": 2}
    cfg = TrainConfig(family="ddpm", preset="tiny", epochs=1, grid_per_class=1, model=unet)
    trained = train_model(workspace, catalog, dataset, cfg, model_name="ddpm")

    result = evaluate_model(workspace, catalog, "ddpm", dataset, IMAGES)
    m = result.metrics
    assert (
        set(m) >= IMAGE_KEYS and m["family"] == "ddpm" and result.model_version_id == trained.model_version_id
    )
    assert list(m["conditional_accuracy_per_class"]) == dataset.classes
    assert m["fd_per_class_samples"] == 6  # 60 samples cycle through 10 classes
    assert set(m["fd_per_class"]) == set(dataset.classes)
    assert m["fd_worst"] == max(m["fd_per_class"].values())
    assert m["fd_class_mean"] == pytest.approx(sum(m["fd_per_class"].values()) / 10)
    with catalog.session() as session:
        assert session.scalars(select(Evaluation)).one().metrics == m


def test_a_gpt_gets_loss_bpc_sample_diversity_and_verbatim_overlap(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    dataset = text_dataset(workspace, catalog, fortune_texts(3000))
    cfg = TrainConfig(family="gpt", preset="tiny", max_steps=20, eval_every_steps=20)
    trained = train_model(workspace, catalog, dataset, cfg, model_name="fortunes")

    m = evaluate_model(workspace, catalog, trained.model_version_id, dataset, TEXTS).metrics
    assert m["modality"] == "text" and m["text_samples"] == 4 and m["verbatim_ngram"] == 4
    # a char model: one token per character (and per <eos>), so bpc is the loss in bits
    assert m["heldout_tokens"] == m["heldout_characters"]
    assert m["bits_per_character"] == pytest.approx(m["heldout_loss"] / math.log(2))
    assert m["heldout_perplexity"] == pytest.approx(math.exp(m["heldout_loss"]))
    assert 0 < m["heldout_loss"] < math.log(200)
    for key in ("distinct_1", "distinct_2", "self_bleu", "repetition_4", "verbatim_ngram_share"):
        assert 0 <= m[key] <= 1, key
    assert m["verbatim_max_longest_match"] >= m["verbatim_mean_longest_match"] >= 0
    assert 0 <= m["balance_skew"] <= 1
    headline, _ = summary_lines(m)
    assert headline.startswith(f"held-out loss {m['heldout_loss']:.3f} nats/token")


def test_an_hf_causal_lm_is_evaluated_like_a_gpt(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    base = tiny_causal_lm(tmp_path / "base")
    dataset = text_dataset(workspace, catalog, shakespeare_lines(60), source="shakespeare")
    model = {"base_model": str(base), "block_size": 32, "sample_tokens": 4, "lora_r": 4}
    cfg = TrainConfig(family="hf-causal-lm", epochs=1, batch_size=8, learning_rate=1e-2, model=model)
    trained = train_model(workspace, catalog, dataset, cfg, model_name="hamlet")

    m = evaluate_model(workspace, catalog, trained.model_version_id, dataset, TEXTS).metrics
    assert m["family"] == "hf-causal-lm" and m["heldout_loss"] > 0
    # BPE: fewer tokens than characters, so bpc is below the loss in bits per token
    assert m["heldout_tokens"] < m["heldout_characters"]
    assert m["bits_per_character"] < m["heldout_loss"] / math.log(2)
    assert "verbatim_4gram_share" in m and "self_bleu" in m


def test_a_music_model_gets_loss_and_pitch_statistics_against_the_data(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    dataset = chorale_dataset(workspace, train=4, test=2)
    cfg = TrainConfig(family="music", preset="tiny", epochs=1, max_steps=10, eval_every_steps=10)
    trained = train_model(workspace, catalog, dataset, cfg, model_name="chorales")

    eval_cfg = TEXTS.model_copy(update={"text_samples": 3, "max_new_tokens": 200})
    m = evaluate_model(workspace, catalog, trained.model_version_id, dataset, eval_cfg).metrics
    assert m["modality"] == "music" and m["music_samples"] == 3 and m["heldout_pieces"] == 2
    assert m["heldout_loss"] > 0 and 0 <= m["pitch_class_tv"] <= 1 and 0 <= m["novelty_4"] <= 1
    assert m["data_key_consistency"] > 0
    headline, _ = summary_lines(m)
    assert headline.startswith(f"pitch-class histogram distance {m['pitch_class_tv']:.3f}")


def test_bad_input_fails_clearly(sqlite_workspace: Workspace) -> None:
    with pytest.raises(GenloopError, match="no evaluator for the 'nope' model family"):
        evaluator_for("nope")
    with pytest.raises(DataError, match="all empty"):
        sample_metrics(["", "  "], ["some training text to index"], TEXTS)
    with pytest.raises(DataError, match="all empty"):
        sample_metrics([], ["some training text to index"], TEXTS)

    # images without labels: no classifier to judge an (unconditional) GAN's samples with
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    records = [
        Record.create(png, modality="image", label=None, source="mnist-5k", license="CC-BY-SA-3.0")
        for png, _ in mnist_pngs(4)
    ]
    unlabelled = write_dataset_version(workspace, catalog, records, name="raw", stage="clean")
    torch.manual_seed(0)
    from genloop.models.gan import DCGAN
    from genloop.models.versions import register_model_version

    DCGAN(latent_dim=8, hidden_channels=8).save(workspace.root / "gan")
    from genloop.catalog.models import Run

    with catalog.session() as session:
        session.add(Run(id="run-0", model_name="gan", family="gan", config={}, path="/none"))
    version = register_model_version(
        workspace, catalog, name="gan", family="gan", run_id="run-0", weights_dir=workspace.root / "gan"
    )
    with pytest.raises(DataError, match="no class labels, so there is no classifier"):
        evaluate_model(workspace, catalog, version, unlabelled, IMAGES)


def test_undefined_metrics_are_stored_as_null_which_every_catalog_accepts() -> None:
    from genloop.evaluate.dispatch import json_safe

    metrics = {"fd": float("nan"), "per_class": {"a": float("inf"), "b": 1.5}, "shares": [0.5, -math.inf]}
    assert json_safe(metrics) == {"fd": None, "per_class": {"a": None, "b": 1.5}, "shares": [0.5, None]}

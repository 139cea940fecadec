"""The text-conditioned VAE: config checks, prompts / embeddings / class indices as conditions,
save and load, and a short training run on real digits in which a paraphrase draws its class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from genloop.catalog import open_catalog
from genloop.catalog.models import Run, RunMetric
from genloop.config import TrainConfig
from genloop.errors import GenloopError
from genloop.models.text_encoders import text_encoder
from genloop.models.vae import ConditionalVAE, VAEConfig
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.images import dataset_classes, image_tensors
from genloop.train.launch import launching
from genloop.workspace import Workspace
from support.mnist import MakeDigits

TEXT = {"conditioning": "text"}


def tiny_text(**overrides: object) -> ConditionalVAE:
    torch.manual_seed(0)
    settings: dict = {"classes": ["7", "2"], "latent_dim": 4, "hidden_channels": 4, **TEXT, **overrides}
    return ConditionalVAE(**settings)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("conditioning", "words", "conditioning must be one of class, text"),
        ("text_encoder", "clip", "text_encoder must be one of minilm, e5"),
        ("caption_languages", ["fr"], "caption_languages must be among en, zh"),
        ("similarity_temperature", 0.0, "similarity_temperature must be > 0"),
    ],
)
def test_invalid_text_options_are_errors(field: str, value: object, message: str) -> None:
    settings: dict = {"classes": ["7"], **TEXT, field: value}
    with pytest.raises(GenloopError, match=message):
        VAEConfig(**settings)


def test_defaults_stay_class_conditioning_and_e5_captions_default_to_both_languages() -> None:
    assert VAEConfig(classes=["a"]).conditioning == "class"
    assert VAEConfig(classes=["a"], **TEXT, text_encoder="e5").caption_languages == ["en", "zh"]
    assert VAEConfig(classes=["a"], **TEXT).caption_languages == ["en"]


def test_bad_train_model_options_fail_before_any_run_starts(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=2)
    catalog = open_catalog(sqlite_workspace.database_url)
    with pytest.raises(GenloopError, match=r"unknown vae option\(s\) \['n_layer'\]") as error:
        train_model(sqlite_workspace, catalog, dataset, TrainConfig(model={"n_layer": 2}), model_name="d")
    assert "conditioning" in (error.value.hint or "")
    with pytest.raises(GenloopError, match="conditioning must be one of"):
        train_model(
            sqlite_workspace, catalog, dataset, TrainConfig(model={"conditioning": "txt"}), model_name="d"
        )
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_a_config_json_without_the_text_fields_loads_as_a_class_model(tmp_path: Path) -> None:
    old = {"family": "vae", "classes": ["a", "b"], "latent_dim": 4, "hidden_channels": 4}
    ConditionalVAE(classes=["a", "b"], latent_dim=4, hidden_channels=4).save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(old))  # as an older genloop wrote it
    assert ConditionalVAE.load(tmp_path / "m").config.conditioning == "class"


def test_sample_takes_prompts_embeddings_and_class_indices() -> None:
    model = tiny_text()
    with torch.no_grad():
        model.output_bias[0].fill_(5.0)  # class "7" bright, "2" dark: the condition shows in the pixels
        model.output_bias[1].fill_(-5.0)
    by_index = model.sample(3, torch.tensor([0, 1, 0]), seed=4)
    prompts = ["the digit seven", "the digit two", "the digit seven"]  # the classes' plain captions
    assert torch.equal(by_index, model.sample(3, prompts, seed=4))
    embeddings = text_encoder("minilm").encode(prompts)
    assert torch.equal(by_index, model.sample(3, embeddings, seed=4))
    assert torch.equal(
        model.sample(2, "a handwritten 7", seed=4), model.sample(2, ["a handwritten 7"] * 2, seed=4)
    )
    bright, dark = model.sample(4, "a handwritten 7", seed=1), model.sample(4, "a handwritten 2", seed=1)
    assert bright.mean() > 0.9 and dark.mean() < 0.1  # each paraphrase picks its class's bias
    with pytest.raises(GenloopError, match="1 or 3 prompts"):
        model.sample(3, ["a", "b"], seed=0)
    with pytest.raises(GenloopError, match=r"\(2, 384\) embeddings"):
        model.sample(2, torch.zeros(2, 5), seed=0)
    with pytest.raises(GenloopError, match="also takes prompt strings"):
        model.sample(2, torch.tensor([0, 5]), seed=0)


def test_a_text_models_samples_do_not_depend_on_their_batch(one_torch_thread: None) -> None:
    torch.set_num_threads(1)  # bit-exactness across batch sizes is promised at one thread
    model = tiny_text(hidden_channels=8).eval()
    embeddings = torch.nn.functional.normalize(torch.randn(12, 384), dim=1)  # 12 different prompts
    seeds = list(range(100, 112))
    batched = model.sample(12, embeddings, seed=0, seeds=seeds)
    alone = torch.cat(
        [model.sample(1, embeddings[i : i + 1], seed=0, seeds=[s]) for i, s in enumerate(seeds)]
    )
    assert torch.equal(batched, alone)  # the prior mix, caption similarity and output bias: row by row
    with torch.no_grad():
        z = torch.randn(12, 4)
        torch.testing.assert_close(model.decode(z, embeddings, sampling=True), model.decode(z, embeddings))


def test_class_indices_in_the_loss_mean_their_plain_caption() -> None:
    model = tiny_text()
    x, labels = torch.rand(2, 1, 28, 28), torch.tensor([1, 0])
    embeddings = text_encoder("minilm").encode(["the digit two", "the digit seven"])
    by_index = model.loss(x, labels, generator=torch.Generator().manual_seed(0))
    by_text = model.loss(x, embeddings, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(by_index, by_text)


def test_a_text_model_saves_its_options_and_loads_to_the_same_samples(tmp_path: Path) -> None:
    model = tiny_text(similarity_temperature=0.05)
    with torch.no_grad():
        model.prior_mean.normal_()
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["conditioning"], config["text_encoder"], config["caption_languages"]) == (
        "text",
        "minilm",
        ["en"],
    )
    loaded = ConditionalVAE.load(tmp_path / "m")
    assert torch.equal(
        loaded.sample(3, "a handwritten 7", seed=2), model.sample(3, "a handwritten 7", seed=2)
    )


def test_training_on_digits_lowers_the_loss_and_a_paraphrase_draws_its_class(
    sqlite_workspace: Workspace, make_digits: MakeDigits, tmp_path: Path
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=40)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TrainConfig(
        epochs=4,
        batch_size=16,
        learning_rate=3e-3,
        latent_dim=8,
        hidden_channels=16,
        grid_per_class=1,
        model=TEXT,
    )
    result = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="digits")
    with catalog.session() as session:
        rows = session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == result.run_id, RunMetric.name == "epoch_train_loss")
            .order_by(RunMetric.step)
        ).all()
        losses = [row.value for row in rows]
    # epoch 1 already starts from the class-mean bias (≈ 158 nats); learning shapes takes it lower
    assert len(losses) == 4 and losses[-1] < 0.93 * losses[0], losses

    model = load_model_version(sqlite_workspace, catalog, result.model_version_id).model
    assert isinstance(model, ConditionalVAE) and model.config.conditioning == "text"
    model.save(tmp_path / "copy")
    copy = ConditionalVAE.load(tmp_path / "copy")
    assert torch.equal(copy.sample(4, "女士上衣", seed=3), model.sample(4, "女士上衣", seed=3))

    # which class's mean image is each sample nearest to? (pixels, Euclidean)
    x, y = image_tensors(
        dataset.iter_records("train"), classes=dataset_classes(dataset), image_size=28, channels=1, what="t"
    )
    means = torch.stack([x[y == k].mean(0) for k in range(10)]).flatten(1)  # (10, 784)

    def nearest_classes(prompt: str) -> torch.Tensor:
        return torch.cdist(model.sample(20, prompt, seed=0).flatten(1), means).argmin(1)

    # paraphrases of the captions "the digit seven" / "the digit two", never seen in training
    assert (nearest_classes("a handwritten 7") == 7).float().mean() >= 0.8
    assert (nearest_classes("the number two") == 2).float().mean() >= 0.8


@pytest.mark.slow  # two torchrun workers, each importing torch and loading the text encoder (~20 s)
def test_text_conditioning_trains_in_two_processes_like_in_one(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=8)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TrainConfig(
        epochs=1,
        batch_size=16,
        latent_dim=4,
        hidden_channels=4,
        checkpoint_every_steps=2,
        grid_per_class=1,
        model=TEXT,
    )
    with launching("torchrun", 2):
        parallel = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="parallel")
    single = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="single")

    def weights(version_id: str) -> torch.Tensor:
        model = load_model_version(sqlite_workspace, catalog, version_id).model
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    # the same captions on both ranks (seeded by the step); only each rank's posterior noise differs
    a, b = weights(single.model_version_id), weights(parallel.model_version_id)
    assert float((a - b).norm() / a.norm()) < 0.01
    assert parallel.metrics["heldout_loss"] == pytest.approx(single.metrics["heldout_loss"], rel=0.01)

"""GAN training on real digits: it learns, it writes its artifacts, it resumes exactly after SIGKILL,
and bad configs fail before any training starts."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import Run, RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.errors import GenloopError
from genloop.generate.engine import GenerationRequest, generate
from genloop.models.gan import DCGAN
from genloop.models.versions import load_model_version
from genloop.train import resolve_train_config, train_model
from genloop.train.device import use_available_cpus
from genloop.train.recipes.gan import AdversarialStep, _model_config
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.mnist import MakeDigits, mnist_pngs
from train.test_resume_after_sigkill import TRAIN_IN_A_CHILD, wait_for_first_checkpoint

TINY = TrainConfig(
    family="gan",
    epochs=2,
    batch_size=32,
    learning_rate=2e-4,
    latent_dim=8,
    hidden_channels=8,
    checkpoint_every_steps=3,
    grid_per_class=2,
    ema_decay=0.9,
)


def digits(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits (N, 1, 28, 28) in [0, 1] and their labels (N,)."""
    pairs = mnist_pngs(per_class)
    arrays = [np.asarray(Image.open(io.BytesIO(png)), dtype=np.float32) / 255.0 for png, _ in pairs]
    x = torch.from_numpy(np.stack(arrays))[:, None]
    return x, torch.tensor([int(label) for _, label in pairs])


def ink_and_shape(images: torch.Tensor, real_mean: torch.Tensor) -> tuple[float, float]:
    """Share of pixels above 0.5, and the correlation of the mean image with the real mean image."""
    mean = images.mean(0).flatten()
    correlation = torch.corrcoef(torch.stack([mean, real_mean.flatten()]))[0, 1]
    return float((images > 0.5).float().mean()), float(correlation)


@pytest.mark.parametrize(("conditioning", "precision"), [("projection", "fp32"), ("none", "bf16")])
def test_a_few_steps_move_the_generator_towards_real_digits(conditioning: str, precision: str) -> None:
    """A random G paints grey noise (ink ≈ 0.5, no digit shape); 60 adversarial steps give it the
    data's amount of ink (≈ 13 % of pixels) and a mean image shaped like the digits' own. Breaking
    either update (a wrong sign, G's gradients not computed, D not learning) fails this."""
    use_available_cpus()  # GENLOOP_NUM_THREADS=1 (conftest): two threads crawl on shared CPUs
    x, y = digits(per_class=40)
    real_ink, _ = ink_and_shape(x, x.mean(0))
    torch.manual_seed(0)
    classes = [str(d) for d in range(10)] if conditioning != "none" else []
    model = DCGAN(latent_dim=16, hidden_channels=16, conditioning=conditioning, classes=classes)
    cfg = TrainConfig(family="gan", batch_size=32, learning_rate=1e-3, latent_dim=16, precision=precision)
    step = AdversarialStep(model, cfg, total_steps=60)
    ink, shape = ink_and_shape(model.sample(200, None, seed=1), x.mean(0))
    assert abs(ink - real_ink) > 0.25 and shape < 0.3, (ink, shape)
    order = torch.Generator().manual_seed(0)
    accuracy = []
    for _ in range(60):
        rows = torch.randint(0, len(x), (32,), generator=order)
        accuracy.append(float(step(x[rows] * 2 - 1, y[rows])["d_accuracy"]))
    ink, shape = ink_and_shape(model.sample(200, None, seed=1), x.mean(0))
    assert abs(ink - real_ink) < 0.06 and shape > 0.6, (ink, real_ink, shape)
    assert sum(accuracy[-10:]) / 10 > 0.7, accuracy  # D tells this young G's images from real ones


def metric_values(workspace: Workspace, run_id: str, name: str) -> list[float]:
    with open_catalog(workspace.database_url).session() as session:
        rows = session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.name == name)
            .order_by(RunMetric.step)
        ).all()
        return [row.value for row in rows]


def test_train_model_writes_grids_metrics_and_an_ema_model_version(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=16)
    catalog = open_catalog(workspace.database_url)
    steps = 2 * -(-len(dataset.records("train")) // 32)

    result = train_model(workspace, catalog, dataset, TINY, model_name="digits")

    run_dir = workspace.state_dir / "runs" / result.run_id
    grid = Image.open(run_dir / "samples" / "epoch-002.png")
    assert grid.size == (2 * 30 + 2, 10 * 30 + 2)  # conditional by default: a row per class
    with catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and (run.status, run.steps_done, run.family) == ("completed", steps, "gan")
    for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy"):
        assert len(metric_values(workspace, result.run_id, name)) == steps // 5
        assert len(metric_values(workspace, result.run_id, f"epoch_{name}")) == 2
    loaded = load_model_version(workspace, catalog, result.model_version_id)
    assert loaded.family == "gan" and loaded.classes == [str(d) for d in range(10)]
    assert loaded.config["conditioning"] == "projection"
    samples = loaded.model.sample(3, torch.tensor([0, 4, 9]), seed=0)  # type: ignore[operator]
    assert samples.shape == (3, 1, 28, 28) and torch.isfinite(samples).all()
    # the version's generator is the EMA one, which the last checkpoint holds as its "ema" part
    last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    ema = torch.load(last / "trainer_state.pt", weights_only=False)["parts"]["ema"]["weights"]
    for name, tensor in ema.items():
        assert torch.equal(loaded.model.generator.state_dict()[name], tensor), name  # type: ignore[union-attr]
    made = generate(workspace, catalog, GenerationRequest(model="digits", per_class=2, labels=["7"]))
    assert [item.label for item in made] == ["7", "7"]  # generation by label
    assert Image.open(made[0].path).size == (256, 256)  # the gallery channel's default resize
    again = train_model(workspace, catalog, dataset, TINY, model_name="digits")
    assert again.already_completed and again.model_version_id == result.model_version_id


def unlabelled(workspace: Workspace, dataset: DatasetHandle) -> DatasetHandle:
    records = [r.with_changes(label=None) for r in dataset.records()]
    catalog = open_catalog(workspace.database_url)
    return write_dataset_version(workspace, catalog, records, name="unlabelled", stage="annotate")


def test_unlabelled_data_trains_an_unconditional_gan(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = unlabelled(sqlite_workspace, make_digits(sqlite_workspace, per_class=6))
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TINY.model_copy(
        update={"epochs": 1, "ema_decay": None, "model": {"loss": "hinge", "spectral_norm": True}}
    )
    result = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="blobs")
    loaded = load_model_version(sqlite_workspace, catalog, result.model_version_id)
    assert loaded.classes == ["any"] and loaded.config["conditioning"] == "none"
    grid = Image.open(sqlite_workspace.state_dir / "runs" / result.run_id / "samples" / "epoch-001.png")
    assert grid.size == (2 * 30 + 2, 2 * 30 + 2)  # unconditional: a square grid


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"image_size": 1000}, "image_size must be an integer from 8 to 256"),
        ({"model": {"conditioning": "film"}}, "conditioning must be one of none, concat, projection"),
        ({"model": {"loss": "wgan"}}, "loss must be one of nonsaturating, hinge"),
        ({"model": {"n_layer": 4}}, r"\[train.model\] has option\(s\) \['n_layer'\]"),
        ({"model": {"conditioning": "concat"}, "unlabelled": True}, "'concat' needs class labels"),
    ],
)
def test_bad_configs_fail_before_training_starts(
    sqlite_workspace: Workspace, make_digits: MakeDigits, update: dict, message: str
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=2)
    if update.pop("unlabelled", False):
        dataset = unlabelled(sqlite_workspace, dataset)
    catalog = open_catalog(sqlite_workspace.database_url)
    with pytest.raises(GenloopError, match=message) as error:
        train_model(sqlite_workspace, catalog, dataset, TINY.model_copy(update=update), model_name="digits")
    assert error.value.hint
    assert not (sqlite_workspace.state_dir / "runs").exists()  # no run was started
    with catalog.session() as session:
        assert session.scalars(select(Run)).all() == []


# hidden 32 and 20 steps per epoch: slow enough that the kill lands inside the first epoch;
# bf16 and channels_last as in the cpu preset, EMA on: every part of the state must come back
RESUMABLE = TINY.model_copy(
    update={
        "batch_size": 16,
        "hidden_channels": 32,
        "checkpoint_every_steps": 2,
        "grid_per_class": 1,
        "precision": "bf16",
        "model": {"channels_last": True},
    }
)


@pytest.mark.slow  # three trainings, one in a child process
def test_sigkill_mid_epoch_then_rerun_ends_bitwise_equal_to_an_uninterrupted_run(
    sqlite_workspace: Workspace, make_digits: MakeDigits, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=40)
    catalog = open_catalog(workspace.database_url)
    steps_per_epoch = -(-len(dataset.records("train")) // RESUMABLE.batch_size)
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    argv = [
        sys.executable,
        "-c",
        TRAIN_IN_A_CHILD,
        str(workspace.root),
        dataset.id,
        RESUMABLE.model_dump_json(),
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = wait_for_first_checkpoint(process, workspace.state_dir / "runs")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    killed_at = int(sorted((run_dir / "checkpoints").glob("step-*"))[-1].name.removeprefix("step-"))
    assert 0 < killed_at < steps_per_epoch  # the kill landed mid-epoch

    capsys.readouterr()
    resumed = train_model(workspace, catalog, dataset, RESUMABLE, model_name="digits")
    assert f"resuming run {run_dir.name} from step {killed_at}" in capsys.readouterr().err
    assert resumed.resumed_from_step == killed_at
    straight = train_model(workspace, catalog, dataset, RESUMABLE, model_name="straight")
    assert straight.resumed_from_step is None

    ours = load_model_version(workspace, catalog, resumed.model_version_id).model.state_dict()
    reference = load_model_version(workspace, catalog, straight.model_version_id).model.state_dict()
    assert ours.keys() == reference.keys()
    for name, tensor in ours.items():  # G (EMA), D, BatchNorm statistics: bitwise equal on CPU
        assert torch.equal(tensor, reference[name]), name


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu"])
def test_every_preset_resolves_to_a_valid_model_config(
    sqlite_workspace: Workspace, make_digits: MakeDigits, preset: str
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=1)
    cfg = resolve_train_config(TrainConfig(family="gan", preset=preset))
    assert cfg.learning_rate == 2e-4  # DCGAN's rate, not the VAE's default
    config = _model_config(cfg, dataset, None)
    assert config.conditioning == "projection" and config.classes == [str(d) for d in range(10)]
    DCGAN.build(config)

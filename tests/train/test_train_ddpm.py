"""The ddpm recipe end to end on real digits: artifacts, EMA weights saved, text conditioning,
config errors before training, and a SIGKILLed run that resumes bitwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from genloop.catalog import open_catalog
from genloop.catalog.models import Run
from genloop.config import TrainConfig
from genloop.errors import GenloopError
from genloop.models.ddpm import DiffusionModel
from genloop.models.versions import load_model_version
from genloop.train import resolve_train_config, train_model
from genloop.train.checkpoint import STATE_FILE
from genloop.train.recipes.ddpm import model_config_for
from genloop.workspace import Workspace
from support.mnist import MakeDigits

TINY_UNET = {"block_channels": [8, 16], "attention_levels": [], "train_timesteps": 50, "sample_steps": 4}


def test_tiny_preset_trains_saves_the_ema_weights_and_writes_grids(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=8)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TrainConfig(family="ddpm", preset="tiny", epochs=2, checkpoint_every_steps=100, model=TINY_UNET)
    result = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="digits")

    steps = 2 * -(-len(dataset.records("train")) // 32)
    run_dir = sqlite_workspace.state_dir / "runs" / result.run_id
    assert set(result.metrics) == {"train_loss", "heldout_loss"}  # final_metrics strips "epoch_"
    grid = Image.open(run_dir / "samples" / "epoch-002.png")
    assert grid.size == (2 * 30 + 2, 10 * 30 + 2)  # columns = grid_per_class (tiny: 2), rows = classes
    with catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and (run.status, run.family, run.steps_done) == ("completed", "ddpm", steps)
    loaded = load_model_version(sqlite_workspace, catalog, result.model_version_id)
    assert isinstance(loaded.model, DiffusionModel) and loaded.classes == [str(d) for d in range(10)]
    last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    ema = torch.load(last / STATE_FILE, weights_only=False)["parts"]["ema"]["weights"]
    raw = load_file(last / "model.safetensors")
    for name, tensor in loaded.model.state_dict().items():  # the version holds the EMA, not the raw weights
        assert torch.equal(tensor, ema[name]), name
    assert any(not torch.equal(ema[name], raw[name]) for name in raw)
    samples = loaded.model.sample(3, torch.tensor([0, 5, 9]), seed=0)
    assert samples.shape == (3, 1, 28, 28) and torch.isfinite(samples).all()


def test_a_text_conditioned_run_takes_free_prompts(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=4)
    catalog = open_catalog(sqlite_workspace.database_url)
    model = {**TINY_UNET, "conditioning": "text", "text_encoder": "minilm"}
    cfg = TrainConfig(family="ddpm", preset="tiny", grid_per_class=1, model=model)
    result = train_model(sqlite_workspace, catalog, dataset, cfg, model_name="prompted")
    loaded = load_model_version(sqlite_workspace, catalog, result.model_version_id)
    assert loaded.config["conditioning"] == "text" and loaded.config["caption_languages"] == ["en"]
    seven = loaded.model.sample(2, "a handwritten seven", seed=1)
    assert seven.shape == (2, 1, 28, 28)
    assert not torch.equal(seven, loaded.model.sample(2, "the digit zero", seed=1))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"blocks": 3}, r"unknown ddpm option\(s\) \['blocks'\]"),
        ({"block_channels": [12, 24]}, "norm_groups 8 must divide"),
        ({"fit": "exact", "block_channels": [8, 8, 8, 8]}, "image_size 28 is not a multiple of 8"),
        ({"conditioning": "text", "text_encoder": "clip"}, "text_encoder must be one of"),
    ],
)
def test_bad_model_options_fail_before_any_training(
    sqlite_workspace: Workspace, make_digits: MakeDigits, model: dict, message: str
) -> None:
    dataset = make_digits(sqlite_workspace, per_class=2)
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = TrainConfig(family="ddpm", preset="tiny", model=model)
    with pytest.raises(GenloopError, match=message) as error:
        train_model(sqlite_workspace, catalog, dataset, cfg, model_name="digits")
    assert error.value.hint
    assert not (sqlite_workspace.state_dir / "runs").exists()  # no run was started
    with catalog.session() as session:
        assert session.query(Run).count() == 0


# -- SIGKILL mid-epoch, then resume (the pattern of test_resume_after_sigkill.py) --------------------

KILL_CONFIG = TrainConfig(
    family="ddpm",
    epochs=1,
    batch_size=16,
    learning_rate=1e-3,
    warmup_steps=3,
    lr_schedule="cosine",
    grad_clip=1.0,
    ema_decay=0.9,
    checkpoint_every_steps=2,
    grid_per_class=1,
    model={**TINY_UNET, "block_channels": [16, 32], "p_uncond": 0.2},
)
TRAIN_IN_A_CHILD = """
import sys
from pathlib import Path
from genloop.catalog import open_catalog
from genloop.config import TrainConfig
from genloop.data.datasets import open_dataset_version
from genloop.train import resolve_train_config, train_model
from genloop.workspace import Workspace

workspace = Workspace(Path(sys.argv[1]))
catalog = open_catalog(workspace.database_url)
dataset = open_dataset_version(workspace, catalog, sys.argv[2])
train_model(workspace, catalog, dataset, TrainConfig.model_validate_json(sys.argv[3]), model_name="digits")
"""


def wait_for_a_checkpoint(process: subprocess.Popen[str], runs: Path, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(runs.glob("*/checkpoints/step-*"))
        if found:
            return found[0].parent.parent
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint:\n{process.communicate()[1]}")
        time.sleep(0.01)
    process.kill()
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run_bitwise(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=40)
    catalog = open_catalog(workspace.database_url)
    steps = -(-len(dataset.records("train")) // KILL_CONFIG.batch_size)
    env = {**os.environ, "GENLOOP_NO_PROGRESS": "1"}
    argv = [
        sys.executable,
        "-c",
        TRAIN_IN_A_CHILD,
        str(workspace.root),
        dataset.id,
        KILL_CONFIG.model_dump_json(),
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = wait_for_a_checkpoint(process, workspace.state_dir / "runs")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    killed_at = int(sorted((run_dir / "checkpoints").glob("step-*"))[-1].name.removeprefix("step-"))
    assert 0 < killed_at < steps  # the kill landed mid-epoch

    resumed = train_model(workspace, catalog, dataset, KILL_CONFIG, model_name="digits")
    assert resumed.run_id == run_dir.name and resumed.resumed_from_step == killed_at
    straight = train_model(workspace, catalog, dataset, KILL_CONFIG, model_name="straight")
    assert straight.resumed_from_step is None
    weights = load_model_version(workspace, catalog, resumed.model_version_id).model.state_dict()
    reference = load_model_version(workspace, catalog, straight.model_version_id).model.state_dict()
    for name, tensor in weights.items():  # EMA weights, optimizer, LR schedule, noise: all continued exactly
        assert torch.equal(tensor, reference[name]), name
    grids = [
        (workspace.state_dir / "runs" / r.run_id / "samples" / "epoch-001.png").read_bytes()
        for r in (resumed, straight)
    ]
    assert grids[0] == grids[1]


@pytest.mark.parametrize(("preset", "unet_size"), [("tiny", 28), ("cpu", 28), ("gpu", 32)])
def test_every_preset_builds_a_valid_config_and_says_how_28_fits(preset: str, unet_size: int) -> None:
    cfg = resolve_train_config(TrainConfig(family="ddpm", preset=preset))
    config = model_config_for(cfg, [str(d) for d in range(10)], None)
    assert (config.image_size, config.unet_size, config.fit) == (28, unet_size, "pad")  # gpu: 28 padded to 32

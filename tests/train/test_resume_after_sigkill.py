"""A training process killed with SIGKILL mid-epoch resumes from its checkpoint and ends where an
uninterrupted run ends; damaged checkpoints left beside the good one are never loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from genloop.catalog import open_catalog
from genloop.catalog.models import ModelVersion, Run, RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.checkpoint import checkpoint_problem
from genloop.workspace import DATABASE_URL_ENV, Workspace

# slow enough per step (hidden 48) and enough steps per epoch (20) that the kill lands inside the first epoch
CONFIG = TrainConfig(
    epochs=2, batch_size=16, latent_dim=8, hidden_channels=48, checkpoint_every_steps=2, grid_per_class=1
)
TRAIN_IN_A_CHILD = """
import sys
from pathlib import Path
from genloop.catalog import open_catalog
from genloop.config import TrainConfig
from genloop.data.datasets import open_dataset_version
from genloop.train import train_model
from genloop.workspace import Workspace

workspace = Workspace(Path(sys.argv[1]))
catalog = open_catalog(workspace.database_url)
dataset = open_dataset_version(workspace, catalog, sys.argv[2])
train_model(workspace, catalog, dataset, TrainConfig.model_validate_json(sys.argv[3]), model_name="digits")
"""


def start_training(workspace: Workspace, dataset: DatasetHandle) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    env["GENLOOP_NO_PROGRESS"] = "1"
    argv = [sys.executable, "-c", TRAIN_IN_A_CHILD, str(workspace.root), dataset.id, CONFIG.model_dump_json()]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_first_checkpoint(process: subprocess.Popen[str], runs: Path, timeout: float = 90) -> Path:
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


def plant_damaged_checkpoints(checkpoints: Path, newest_good: Path) -> tuple[Path, Path]:
    """A `.partial` leftover and a torn checkpoint, both 'newer' than the good one."""
    partial = checkpoints / ".step-00009998.x1y2.partial"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 64)
    torn = checkpoints / "step-00009999"
    torn.mkdir()
    for child in newest_good.iterdir():
        data = child.read_bytes()
        (torn / child.name).write_bytes(data[: len(data) // 2] if child.suffix == ".safetensors" else data)
    return partial, torn


def test_sigkill_mid_epoch_then_rerun_resumes_and_matches_an_uninterrupted_run(
    sqlite_workspace: Workspace, make_digits: Callable[..., DatasetHandle], capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = sqlite_workspace
    dataset = make_digits(workspace, per_class=40)
    catalog = open_catalog(workspace.database_url)
    steps_per_epoch = -(-len(dataset.records("train")) // CONFIG.batch_size)

    process = start_training(workspace, dataset)
    run_dir = wait_for_first_checkpoint(process, workspace.state_dir / "runs")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    assert checkpoints and all(checkpoint_problem(c) is None for c in checkpoints)  # complete or absent
    killed_at = int(checkpoints[-1].name.removeprefix("step-"))
    assert 0 < killed_at < steps_per_epoch  # the kill landed mid-epoch
    with catalog.session() as session:
        run = session.get(Run, run_dir.name)
        assert run is not None and run.status == "running"
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
    partial, torn = plant_damaged_checkpoints(run_dir / "checkpoints", checkpoints[-1])

    capsys.readouterr()
    result = train_model(workspace, catalog, dataset, CONFIG, model_name="digits")

    assert f"resuming run {run_dir.name} from step {killed_at}" in capsys.readouterr().err
    assert result.run_id == run_dir.name and result.resumed_from_step == killed_at
    assert not partial.exists() and not torn.exists()
    with catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and (run.status, run.steps_done) == ("completed", 2 * steps_per_epoch)
        metric_keys = session.execute(
            select(RunMetric.step, RunMetric.name).where(RunMetric.run_id == result.run_id)
        ).all()
        assert len(metric_keys) == len(set(metric_keys))  # nothing logged twice across the kill
    assert json.loads((run_dir / "config.json").read_text())["train"]["epochs"] == 2
    resumed = load_model_version(workspace, catalog, result.model_version_id)
    samples = resumed.model.sample(4, torch.tensor([0, 1, 2, 3]), seed=0)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()

    # the same training without the kill (another model name, so another run) ends identically
    straight = train_model(workspace, catalog, dataset, CONFIG, model_name="straight")
    assert straight.resumed_from_step is None
    reference = load_model_version(workspace, catalog, straight.model_version_id).model.state_dict()
    for name, tensor in resumed.model.state_dict().items():  # bitwise equal on CPU; GPU kernels may differ
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5, msg=name)

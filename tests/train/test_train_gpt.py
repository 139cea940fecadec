"""The gpt recipe end to end on a few KB of real fortunes: learning, artifacts, catalog rows, bad
configs refused before training, and a SIGKILLed run that resumes to bitwise the same weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select

from genloop.catalog import open_catalog
from genloop.catalog.models import ModelVersion, Run, RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.versions import load_model_version
from genloop.train import resolve_train_config, train_model
from genloop.train.recipes.gpt import PRESETS
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.text import fortune_texts, text_dataset

TINY = TrainConfig(family="gpt", preset="tiny", seed=1)


def metric_values(workspace: Workspace, run_id: str, name: str) -> list[float]:
    with open_catalog(workspace.database_url).session() as session:
        rows = session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.name == name)
            .order_by(RunMetric.step)
        ).all()
        return [row.value for row in rows]


def test_a_tiny_run_learns_and_writes_a_loadable_model_with_its_tokenizer(
    sqlite_workspace: Workspace,
) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    dataset = text_dataset(workspace, catalog, fortune_texts(4000))
    cfg = TrainConfig(family="gpt", preset="tiny", max_steps=60, eval_every_steps=20)

    result = train_model(workspace, catalog, dataset, cfg, model_name="fortunes")

    heldout = metric_values(workspace, result.run_id, "epoch_heldout_loss")
    assert len(heldout) == 3 and heldout[-1] < heldout[0] - 0.3  # nats per character
    assert heldout[-1] < 3.4 < torch.log(torch.tensor(70.0))  # well below a uniform guess
    assert set(result.metrics) == {"train_loss", "heldout_loss", "heldout_bits_per_char"}
    assert result.metrics["heldout_bits_per_char"] == pytest.approx(heldout[-1] / 0.6931, rel=1e-3)
    run_dir = workspace.state_dir / "runs" / result.run_id
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "step-000020.txt",
        "step-000040.txt",
        "step-000060.txt",
    ]
    assert (run_dir / "samples" / "step-000060.txt").read_text(encoding="utf-8").strip()
    loaded = load_model_version(workspace, catalog, result.model_version_id)
    assert isinstance(loaded.model, GPT) and {p.name for p in loaded.path.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "char_vocab.json",
    }
    assert loaded.config["family"] == "gpt" and loaded.config["n_layer"] == 2  # the tiny preset
    texts = loaded.model.generate_text(["A gift", "你好"], seed=0, max_tokens=20)  # 你好: unseen → <unk>
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)

    again = train_model(workspace, catalog, dataset, cfg, model_name="fortunes")
    assert again.already_completed and again.model_version_id == result.model_version_id


def test_a_bpe_run_saves_tokenizer_json_beside_the_model(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    dataset = text_dataset(workspace, catalog, fortune_texts(4000))
    cfg = TINY.model_copy(update={"max_steps": 10, "model": {"tokenizer": "bpe", "vocab_size": 300}})
    result = train_model(workspace, catalog, dataset, cfg, model_name="fortunes")
    loaded = load_model_version(workspace, catalog, result.model_version_id)
    assert (loaded.path / "tokenizer.json").is_file() and loaded.config["vocab_size"] == 300
    assert "heldout_bits_per_char" not in result.metrics  # a BPE token is not a character


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"n_embd": 30, "n_head": 4}, "must be divisible by n_head"),
        ({"block_size": 1}, "block_size must be ≥ 2"),
        ({"tokenizer": "sentencepiece"}, "tokenizer must be one of"),
    ],
)
def test_bad_model_options_fail_before_training(
    sqlite_workspace: Workspace, model: dict[str, object], message: str
) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    dataset = text_dataset(sqlite_workspace, catalog, fortune_texts(1000))
    with pytest.raises(GenloopError, match=message):
        train_model(
            sqlite_workspace, catalog, dataset, TINY.model_copy(update={"model": model}), model_name="x"
        )
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0  # nothing started
    assert not (sqlite_workspace.state_dir / "runs").exists()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_a_valid_config(preset: str) -> None:
    cfg = resolve_train_config(TrainConfig(family="gpt", preset=preset))
    model = GPTConfig.from_options(cfg.model)
    assert cfg.max_steps and model.n_embd % model.n_head == 0


# -- SIGKILL and resume ----------------------------------------------------------------------------

KILLED = TrainConfig(
    family="gpt",
    preset="tiny",
    max_steps=80,
    eval_every_steps=20,
    checkpoint_every_steps=2,
    seed=3,
    model={"n_embd": 64, "block_size": 48, "dropout": 0.1},  # dropout: the torch RNG must resume too
)
TRAIN_IN_A_CHILD = """
import sys
from pathlib import Path
from genloop.catalog import open_catalog
from genloop.config import TrainConfig
from genloop.data.datasets import open_dataset_version
from genloop.train import resolve_train_config, train_model
from genloop.train.recipes.gpt import PRESETS
from genloop.workspace import Workspace

workspace = Workspace(Path(sys.argv[1]))
catalog = open_catalog(workspace.database_url)
dataset = open_dataset_version(workspace, catalog, sys.argv[2])
train_model(workspace, catalog, dataset, TrainConfig.model_validate_json(sys.argv[3]), model_name="fortunes")
"""


def kill_after_first_checkpoint(workspace: Workspace, dataset: DatasetHandle) -> Path:
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    env["GENLOOP_NO_PROGRESS"] = "1"
    argv = [
        sys.executable,
        "-c",
        TRAIN_IN_A_CHILD,
        str(workspace.root),
        dataset.id,
        KILLED.model_dump_json(exclude_unset=True),
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = sorted((workspace.state_dir / "runs").glob("*/checkpoints/step-*"))
        if found:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
            return found[0].parent.parent
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint:\n{process.communicate()[1]}")
        time.sleep(0.005)
    process.kill()
    pytest.fail("no checkpoint appeared")


@pytest.mark.slow  # a child process, a second workspace and three trainings: ~20 s of CPU
def test_sigkill_then_rerun_resumes_to_bitwise_the_weights_of_an_uninterrupted_run(
    sqlite_workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = sqlite_workspace
    catalog = open_catalog(workspace.database_url)
    dataset = text_dataset(workspace, catalog, fortune_texts(4000))

    run_dir = kill_after_first_checkpoint(workspace, dataset)
    killed_at = max(int(p.name.removeprefix("step-")) for p in (run_dir / "checkpoints").glob("step-*"))
    assert 0 < killed_at < 80

    # a copy of the killed workspace whose newest checkpoint was made with another tokenizer
    # (another run's, on Chinese text): resuming it is refused before any training
    copy = Workspace(Path(shutil.copytree(workspace.root, tmp_path / "copy")))
    copy_catalog = open_catalog(copy.database_url)
    poems = text_dataset(copy, copy_catalog, fortune_texts(3000, name="tang300"), name="poems")
    other = train_model(
        copy, copy_catalog, poems, TINY.model_copy(update={"max_steps": 2}), model_name="poems"
    )
    other_checkpoint = max((copy.state_dir / "runs" / other.run_id / "checkpoints").glob("step-*"))
    shutil.copytree(
        other_checkpoint, copy.state_dir / "runs" / run_dir.name / "checkpoints" / "step-00009999"
    )
    with pytest.raises(GenloopError, match="checkpointed with another tokenizer"):
        train_model(copy, copy_catalog, dataset, KILLED, model_name="fortunes")

    capsys.readouterr()
    resumed = train_model(workspace, catalog, dataset, KILLED, model_name="fortunes")
    assert f"resuming run {run_dir.name} from step {killed_at}" in capsys.readouterr().err
    assert resumed.run_id == run_dir.name and resumed.resumed_from_step == killed_at
    with catalog.session() as session:
        run = session.get(Run, resumed.run_id)
        assert run is not None and (run.status, run.steps_done) == ("completed", 80)
        keys = session.execute(select(RunMetric.step, RunMetric.name).where(RunMetric.run_id == run.id)).all()
        assert len(keys) == len(set(keys))  # nothing logged twice across the kill
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1

    straight = train_model(workspace, catalog, dataset, KILLED, model_name="straight")
    assert straight.resumed_from_step is None
    ours = load_model_version(workspace, catalog, resumed.model_version_id).model.state_dict()
    reference = load_model_version(workspace, catalog, straight.model_version_id).model.state_dict()
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[name], reference[name]) for name in ours)  # bitwise, on CPU
    assert resumed.metrics == straight.metrics
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["tokenizer"] == "char" and config["train"]["max_steps"] == 80

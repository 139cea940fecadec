"""Crash-safe training checkpoints: `runs/RUN_ID/checkpoints/step-00000123/`.

Each checkpoint directory holds

    model.safetensors, config.json   the model, saved by its family (loadable on its own)
    trainer_state.pt                 the state_dict of every stateful part (optimizers, LR schedulers,
                                     EMA weights, early stopping, …), epoch, step in epoch, global
                                     step, and the torch / NumPy / Python RNG states
    checkpoint.json                  step + SHA-256 and size of every file above, written last

It is built under a temporary `.step-….partial` name and renamed into place
(`atomic_directory`), so a directory under its final name is complete. A checkpoint
is nevertheless verified against `checkpoint.json` before use: one that was torn
anyway (copied by hand, disk trouble) is removed and the previous one is used.
Only the newest `KEEP_LAST` checkpoints are kept.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from genloop.errors import GenloopError
from genloop.progress import say
from genloop.storage import atomic_directory, atomic_write_json, remove_partials, sha256_hex

KEEP_LAST = 2
STATE_FILE = "trainer_state.pt"
MANIFEST_FILE = "checkpoint.json"
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainerState:
    """Where the loop stands: `epoch` is the epoch in progress (0-based), `step_in_epoch` the
    batches of it already done, `global_step` the optimizer steps so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    extra: dict[str, float] = field(default_factory=dict)
    """Running sums the recipe needs to continue exactly (e.g. the epoch's loss so far)."""


class Stateful(Protocol):
    """Anything a checkpoint can hold: optimizers, LR schedulers, EMA, GradScaler, EarlyStopping."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any], /) -> Any: ...


def checkpoint_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def save_checkpoint(
    checkpoints_dir: Path, *, model: nn.Module, parts: Mapping[str, Stateful], state: TrainerState
) -> Path:
    """Write a checkpoint at `state.global_step` atomically; prune all but the newest KEEP_LAST.

    `parts` names every stateful object besides the model, e.g. {"optimizer": opt,
    "scheduler": sched, "ema": ema}; `load_checkpoint` restores them by the same names.
    """
    final = checkpoints_dir / checkpoint_dir_name(state.global_step)
    with atomic_directory(final) as staging:
        model.save(staging)  # type: ignore[operator]  # family contract: config.json + model.safetensors
        trainer_state = {
            "parts": {name: part.state_dict() for name, part in parts.items()},
            "rng": _rng_states(),
            **asdict(state),
        }
        torch.save(trainer_state, staging / STATE_FILE)
        files = {
            child.name: {"sha256": sha256_hex(child.read_bytes()), "bytes": child.stat().st_size}
            for child in sorted(staging.iterdir())
            if child.is_file()
        }
        atomic_write_json(staging / MANIFEST_FILE, {"step": state.global_step, "files": files})
    _prune(checkpoints_dir)
    return final


def _complete_checkpoints(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    found = []
    if checkpoints_dir.is_dir():
        for child in checkpoints_dir.iterdir():
            match = _NAME.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
    return sorted(found)


def _prune(checkpoints_dir: Path) -> None:
    for _step, path in _complete_checkpoints(checkpoints_dir)[:-KEEP_LAST]:
        shutil.rmtree(path, ignore_errors=True)


def checkpoint_problem(path: Path) -> str | None:
    """None when every file listed in `checkpoint.json` is present with its size and hash."""
    manifest_path = path / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for name, expected in manifest["files"].items():
            data = (path / name).read_bytes()
            if len(data) != expected["bytes"] or sha256_hex(data) != expected["sha256"]:
                return f"{name} does not match {MANIFEST_FILE}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable: {exc.__class__.__name__}: {exc}"
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete, verified checkpoint of a run (`run_dir/checkpoints/`), or None.

    Leftover `.partial` directories of a killed process are removed, never loaded.
    """
    checkpoints_dir = run_dir / "checkpoints"
    remove_partials(checkpoints_dir)
    for _step, path in reversed(_complete_checkpoints(checkpoints_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        # removed, not just skipped: left in place it would shadow (and outlive) newer checkpoints
        say(f"[yellow]removing damaged checkpoint {path}: {problem}[/yellow]")
        shutil.rmtree(path, ignore_errors=True)
    return None


def load_checkpoint(path: Path, *, model: nn.Module, parts: Mapping[str, Stateful]) -> TrainerState:
    """Restore model weights, every part's state and the RNG states; return where the loop stood.

    A part the checkpoint does not hold (or one it holds that is not asked for) means the
    recipe changed shape since the checkpoint was written: that is an error, not a guess.
    """
    from safetensors.torch import load_file

    model.load_state_dict(load_file(path / "model.safetensors"))
    # weights_only=False: the NumPy and Python RNG states are plain tuples/arrays, and the file
    # was written by this run (its hash is verified against checkpoint.json before loading)
    saved = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    saved_parts: dict[str, Any] = saved["parts"]
    if set(saved_parts) != set(parts):
        raise GenloopError(
            f"checkpoint {path} holds {sorted(saved_parts)} but this recipe restores {sorted(parts)}",
            hint="the training code changed since this run started; remove the run directory to start over",
        )
    for name, part in parts.items():
        part.load_state_dict(saved_parts[name])
    torch.set_rng_state(saved["rng"]["torch"])
    np.random.set_state(saved["rng"]["numpy"])
    random.setstate(saved["rng"]["python"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return TrainerState(
        epoch=int(saved["epoch"]),
        step_in_epoch=int(saved["step_in_epoch"]),
        global_step=int(saved["global_step"]),
        extra={k: float(v) for k, v in saved["extra"].items()},
    )

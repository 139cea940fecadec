"""A saved model directory, the family contract's files:

    config.json         {"family": NAME, **the family config's fields, **extras}
    model.safetensors   the module's state_dict (tensors made contiguous, on CPU)
    (+ any files the family adds: tokenizer.json, char_vocab.json, …)

Every family saves and loads through these three functions, so every family refuses a
directory of another family, a config from a newer genloop, and weights that do not fit
their config.json with the same clear messages.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import fields
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from genloop.errors import GenloopError, NotFoundError
from genloop.storage import atomic_write_bytes, atomic_write_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_model_files(directory: Path, *, family: str, config: dict[str, Any], module: nn.Module) -> None:
    """Write `model.safetensors` (the module's state_dict) then `config.json`, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, safetensors_bytes(state))
    atomic_write_json(directory / CONFIG_FILE, {"family": family, **config})


def read_model_config(
    directory: Path, *, family: str, config_class: type, extras: Collection[str] = ()
) -> dict[str, Any]:
    """config.json's fields without "family", after checking both files exist and the family matches.

    Keys that are neither `config_class` fields nor `extras` mean a newer genloop wrote it.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise NotFoundError(f"{path} is missing", hint=f"{directory} is not a saved {family} model")
    try:
        values = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenloopError(
            f"{config_path}: not readable JSON ({exc})", hint="restore the model directory"
        ) from None
    if not isinstance(values, dict):
        raise GenloopError(f"{config_path}: expected a JSON object", hint="restore the model directory")
    if values.pop("family", family) != family:
        raise GenloopError(f"{config_path}: not a {family} model", hint="load it with its own family")
    unknown = sorted(set(values) - {f.name for f in fields(config_class)} - set(extras))
    if unknown:
        raise GenloopError(
            f"{config_path}: unknown field(s) {unknown}", hint="it was saved by a newer genloop; upgrade"
        )
    return values


def load_model_weights(module: nn.Module, directory: Path) -> None:
    """Load `model.safetensors` into `module`; a clear error when names or shapes do not fit."""
    weights_path = Path(directory) / WEIGHTS_FILE
    try:
        module.load_state_dict(load_file(weights_path))
    except (RuntimeError, ValueError) as exc:  # shapes or names differ from what config.json says
        raise GenloopError(
            f"{weights_path} does not fit {Path(directory) / CONFIG_FILE}: {str(exc).splitlines()[0]}",
            hint="the directory mixes files of two models; retrain or restore it",
        ) from None

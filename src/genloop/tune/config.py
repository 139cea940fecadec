"""`[tune]` in genloop.toml: what to search, how long, and which metric decides.

    [tune]
    n_trials = 20                 # in total: a re-run continues the study up to this many
    timeout = 3600                # seconds per invocation (optional)
    metric = "heldout_loss"       # a final metric of the run (TrainResult.metrics)
    direction = "minimize"
    [tune.space]                  # [train] options; each a range or a list of choices
    learning_rate = {low = 1e-4, high = 1e-2, log = true}
    hidden_channels = {choices = [16, 32]}
    epochs = {low = 2, high = 6}  # int options take int bounds (step optional)

The models live in genloop/config.py with every other section; this module adds the
checks that need to know the [train] options (is each searched name tunable, do its
bounds validate as that option).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import ValidationError

from genloop.config import GenloopConfig, TrainConfig, TuneConfig
from genloop.errors import ConfigError
from genloop.workspace import Workspace

NOT_TUNABLE = ("family", "preset", "model")
"""Options that change what is trained, not how: a study compares runs of one model."""
EXAMPLE = "[tune]\nn_trials = 10\n[tune.space]\nlearning_rate = {low = 1e-4, high = 1e-2, log = true}"


def option_kind(name: str) -> type:
    """int, float, or object (anything else: choices only) for a [train] option."""
    annotation = TrainConfig.model_fields[name].annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation if annotation in (int, float) else object  # type: ignore[return-value]


def parse_tune_config(table: dict[str, Any], *, source: str) -> TuneConfig:
    """Validate the [tune] table; every error names the file, the key and what to do."""
    try:
        config = TuneConfig.model_validate(table)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = "[tune]" + "".join(f".{part}" for part in err["loc"] if part != "__root__")
            msg = (
                "unknown key"
                if err["type"] == "extra_forbidden"
                else err["msg"].removeprefix("Value error, ")
            )
            lines.append(f"{source}: {where}: {msg}")
        raise ConfigError("\n".join(lines), hint=f"a valid example:\n{EXAMPLE}") from None
    _check_space(config, source)
    return config


def _check_space(config: TuneConfig, source: str) -> None:
    tunable = sorted(set(TrainConfig.model_fields) - set(NOT_TUNABLE))
    if not config.space:
        raise ConfigError(
            f"{source}: [tune.space] is empty: there is nothing to search",
            hint=f"add at least one [train] option to search, e.g.\n{EXAMPLE}",
        )
    for name, spec in config.space.items():
        where = f"{source}: [tune.space].{name}"
        if name not in tunable:
            raise ConfigError(
                f"{where}: unknown parameter (not a tunable [train] option)",
                hint=f"tunable: {', '.join(tunable)}",
            )
        kind = option_kind(name)
        if spec.choices is None and kind is object:
            raise ConfigError(f"{where}: not a number, so give choices = [...] instead of low/high")
        bounds = [spec.low, spec.high, spec.step] if spec.choices is None else []
        if kind is int and any(b is not None and b != int(b) for b in bounds):
            raise ConfigError(f"{where}: {name} is an integer option: low, high and step must be integers")
        candidates: list[Any] = spec.choices if spec.choices is not None else [spec.low, spec.high]
        for value in candidates:
            try:
                TrainConfig.model_validate({name: int(value) if kind is int and not spec.choices else value})
            except ValidationError as exc:
                reason = exc.errors()[0]["msg"]
                raise ConfigError(f"{where}: {value!r} is not a valid {name}: {reason}") from None


def read_tune_config(workspace: Workspace) -> TuneConfig:
    """The [tune] section of the workspace's genloop.toml, its search space checked."""
    config = workspace.config  # validates the whole file, [tune] included
    source = str(workspace.config_path)
    if config.tune is None:
        raise ConfigError(f"{source} has no [tune] section", hint=f"add one, for example:\n{EXAMPLE}")
    _check_space(config.tune, source)
    return config.tune


def workspace_config(workspace: Workspace) -> GenloopConfig:
    """The workspace's validated config (kept for callers of the tune API)."""
    return workspace.config

"""Training presets: `[train] preset = "tiny" | "cpu" | "gpu"`.

Each recipe module declares `PRESETS = {"tiny": {...}, "cpu": {...}, "gpu": {...}}`, whose
values are `[train]` options (and a nested "model" dict for `[train.model]`). A preset
fills what genloop.toml leaves unset; what the file sets always wins:

    [train]
    family = "gpt"
    preset = "cpu"
    learning_rate = 1e-3      # overrides the preset's
"""

from __future__ import annotations

from typing import Any

from genloop.config import TrainConfig
from genloop.errors import ConfigError


def apply_preset(cfg: TrainConfig, presets: dict[str, dict[str, Any]]) -> TrainConfig:
    """`cfg` with every option it does not set explicitly taken from `presets[cfg.preset]`."""
    if cfg.preset is None:
        return cfg
    if cfg.preset not in presets:
        raise ConfigError(
            f"[train].preset {cfg.preset!r} is not defined for family {cfg.family!r}",
            hint=f"presets of {cfg.family}: {', '.join(sorted(presets)) or '(none)'}",
        )
    preset = dict(presets[cfg.preset])
    explicit = cfg.model_fields_set
    values: dict[str, Any] = {**preset, **{name: getattr(cfg, name) for name in explicit}}
    values["model"] = {**preset.get("model", {}), **cfg.model}
    try:
        return TrainConfig(**values)
    except ValueError as exc:  # a preset that does not validate is a bug in the recipe
        raise ConfigError(f"preset {cfg.preset!r} of {cfg.family!r} is invalid: {exc}") from exc

"""One explicit training recipe per model family, by family name.

A recipe module provides

    train(workspace, catalog, dataset, cfg, *, model_name, init_from=None,
          extra_datasets=(), alias="champion", feedback_count=0) -> TrainResult
    PRESETS = {"tiny": {...}, "cpu": {...}, "gpu": {...}}     # see genloop.train.presets
    DATA_PARALLEL = True      # optional: the recipe supports `genloop train --launcher …`

and builds its loop from the shared components (`session`, `optim`, `ema`,
`early_stopping`, `checkpoint`, `device`), not from a shared loop.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from genloop.errors import GenloopError

RECIPE_MODULES = {
    "vae": "genloop.train.recipes.vae",
    "gan": "genloop.train.recipes.gan",
    "gpt": "genloop.train.recipes.gpt",
    "music": "genloop.train.recipes.music",
    "ddpm": "genloop.train.recipes.ddpm",
    "hf-causal-lm": "genloop.train.recipes.hf_causal_lm",
}


def recipe_module(family: str) -> ModuleType:
    """The recipe of `family`; a GenloopError naming the families with a recipe otherwise."""
    name = RECIPE_MODULES.get(family)
    if name is None:
        raise GenloopError(
            f"model family {family!r} has no training recipe",
            hint=f"families genloop can train: {', '.join(sorted(RECIPE_MODULES))}",
        )
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise GenloopError(
            f"the {family} recipe cannot be loaded: {exc}",
            hint="install the extra it needs (pip install 'genloop[hf]' for gpt/ddpm/hf-causal-lm, "
            "'genloop[music]' for music)",
        ) from exc

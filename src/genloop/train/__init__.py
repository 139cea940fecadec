"""Training: `train_model` runs the recipe of the configured model family.

    result = train_model(workspace, catalog, dataset, config.train, model_name="digits")
    result.model_version_id   # "digits-v1", aliased champion

A run is identified by its family, config, datasets and starting point: running the
same training again returns the finished model version, or resumes a killed run
from its newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.registry import get_model_family
from genloop.train.launch import relaunch_requested
from genloop.train.presets import apply_preset
from genloop.train.recipes import RECIPE_MODULES, recipe_module
from genloop.train.runs import TrainResult
from genloop.workspace import Workspace

__all__ = ["TrainResult", "resolve_train_config", "train_model"]


def resolve_train_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its family's preset applied (see `genloop.train.presets`)."""
    return apply_preset(cfg, getattr(recipe_module(cfg.family), "PRESETS", {}))


def train_model(
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    cfg: TrainConfig,
    *,
    model_name: str,
    init_from: str | None = None,
    extra_datasets: Sequence[tuple[DatasetHandle, str, int]] = (),
    alias: str | None = "champion",
    feedback_count: int = 0,
) -> TrainResult:
    """Train (or fine-tune `init_from`) a `cfg.family` model on `dataset` and register a version.

    `extra_datasets` holds (dataset, role, repeat): its train records are added `repeat`
    times (feedback fine-tuning). The new version gets `alias` (None: no alias).
    """
    get_model_family(cfg.family)  # an unknown family fails here, listing the available ones
    recipe = recipe_module(cfg.family)
    if relaunch_requested() is not None and not getattr(recipe, "DATA_PARALLEL", False):
        able = [f for f in sorted(RECIPE_MODULES) if getattr(_loaded(f), "DATA_PARALLEL", False)]
        raise GenloopError(
            f"the {cfg.family} recipe does not train in several processes yet",
            hint=f"drop --launcher to train in one process; data-parallel families: {', '.join(able)}",
        )
    result: TrainResult = recipe.train(
        workspace,
        catalog,
        dataset,
        resolve_train_config(cfg),
        model_name=model_name,
        init_from=init_from,
        extra_datasets=extra_datasets,
        alias=alias,
        feedback_count=feedback_count,
    )
    return result


def _loaded(family: str) -> object | None:
    """The recipe module of `family` if it imports (for listing; never raises)."""
    try:
        return recipe_module(family)
    except GenloopError:
        return None

"""Image improvement recipes (VAE, GAN, DDPM): feedback + a reward → a challenger model version.

A *reward* is any images (N, C, H, W) in [0, 1] → scores (N,) callable, usually
`RewardModel.score` (improve/reward.py). Every fine-tune starts from the champion, trains on
the champion's original data (which holds quality) plus a reward-shaped set, and registers
the result with alias `challenger`; its run lists the preference dataset with role
`feedback` (lineage to the events) and the shaped set with role `reward-weighted` or
`rejection-sampled`.

* `reward_weighted_finetune`: samples of the champion and the liked feedback images, each
  repeated round(base_repeat · wᵢ) times (at most `max_repeat`), where
  wᵢ = exp(β · zᵢ) · feedback_weightᵢ / mean(·) and zᵢ is the standardised reward.
  (`improve()` is the special case "liked items only, every wᵢ equal".)
* `rejection_sampling_finetune`: `samples_per_class` samples per class, the best
  `keep_fraction` of each class by reward kept (classes stay balanced), each `repeat` times.
* `BestOfN` (generate/guidance.py, re-exported here): reward-guided sampling: draw n candidates
  per image, keep the one with the highest reward (`genloop generate --best-of N` uses it too).

Each result reports the mean reward of champion and challenger samples on the same fixed
seeds (`eval_seed`), the direct measure of "moved toward the preference".
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from genloop.catalog import Catalog
from genloop.config import GenloopConfig
from genloop.data.datasets import DatasetHandle, open_dataset_version, write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError, GenloopError
from genloop.evaluate import evaluate_model
from genloop.generate.guidance import BestOfN, ImageReward
from genloop.improve.recipe import training_dataset_id
from genloop.models.label_prior import read_label_prior, write_label_prior
from genloop.models.versions import LoadedModel, load_model_version, resolve_model_version
from genloop.train import train_model
from genloop.train.images import decode_image
from genloop.workspace import Workspace


@dataclass(frozen=True)
class ImageRecipeResult:
    recipe: str
    champion: str
    challenger: str
    feedback_dataset: str
    shaped_dataset: str
    """The reward-shaped set the challenger was fine-tuned on (besides the original data)."""
    shaped_records: int
    champion_reward: float
    challenger_reward: float
    """Mean reward of `eval_per_class` samples per class on the same fixed seeds."""
    champion_metrics: dict[str, Any] | None = None
    challenger_metrics: dict[str, Any] | None = None
    challenger_prior: dict[str, float] | None = None
    """The challenger's class prior p(y) (models/label_prior.py); None for unconditional models."""


def class_conditions(loaded: LoadedModel, per_class: int) -> torch.Tensor:
    """Class indices 0,0,…,1,1,… (`per_class` each); one class for an unconditional model."""
    return torch.arange(max(len(loaded.classes), 1)).repeat_interleave(per_class)


@torch.no_grad()
def sample_per_class(
    sampler: Any, loaded: LoadedModel, per_class: int, seed: int, **params: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` samples of every class: (images (N, C, H, W) in [0, 1], class indices (N,))."""
    y = class_conditions(loaded, per_class)
    return sampler.sample(len(y), y, seed=seed, **params).float().clamp(0, 1).cpu(), y


def mean_reward(
    workspace: Workspace, catalog: Catalog, ref: str, reward: ImageReward, *, per_class: int, seed: int
) -> float:
    """The mean reward of a model version's samples on fixed seeds."""
    loaded = load_model_version(workspace, catalog, ref)
    x, _ = sample_per_class(loaded.model, loaded, per_class, seed)
    return float(reward(x).mean())


def png_bytes(image: torch.Tensor) -> bytes:
    """(C, H, W) in [0, 1] → PNG bytes (L for one channel, RGB for three)."""
    array = image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array)).save(
        buffer, format="PNG"
    )
    return buffer.getvalue()


def _liked_feedback(
    dataset: DatasetHandle, loaded: LoadedModel, size: int, channels: int
) -> tuple[list[Record], torch.Tensor, torch.Tensor]:
    """The preference dataset's liked images of the model's classes: (records, x, weight)."""
    records = [
        r
        for r in dataset.iter_records()
        if r.modality == "image"
        and r.meta.get("reaction") == "like"
        and (not loaded.classes or r.label in loaded.classes)
    ]
    if not records:
        return [], torch.empty(0, channels, size, size), torch.empty(0)
    arrays = np.stack([decode_image(r, image_size=size, channels=channels) for r in records])
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    return records, x, torch.tensor([float(r.meta.get("weight", 1.0)) for r in records])


def _generated_records(
    x: torch.Tensor, y: torch.Tensor, scores: torch.Tensor, loaded: LoadedModel, seed: int
) -> list[Record]:
    label = (lambda i: loaded.classes[i]) if loaded.classes else (lambda i: None)
    return [
        Record.create(
            png_bytes(image),
            modality="image",
            label=label(int(cls)),
            source=f"generated:{loaded.version_id}",
            license=f"generated by genloop from {loaded.version_id}",
            meta={"reward": float(score), "seed": seed, "index": i},
        )
        for i, (image, cls, score) in enumerate(zip(x, y, scores, strict=True))
    ]


def _repeats(weights: torch.Tensor, base_repeat: float, max_repeat: int, seed: int) -> list[int]:
    """Stochastic rounding of base_repeat · w (w normalised to mean 1), clipped to [0, max_repeat]."""
    scaled = base_repeat * weights / weights.mean().clamp_min(1e-12)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(scaled), generator=generator)
    return [int(v) for v in torch.floor(scaled + noise).clamp(0, max_repeat).tolist()]


def reward_weighted_prior(
    prior: dict[str, float], classes: Sequence[str], y: torch.Tensor, weights: torch.Tensor
) -> dict[str, float]:
    """p_new(c) ∝ p_old(c) · mean_{i: yᵢ = c} wᵢ — the reward-weighted maximum-likelihood p(y).

    The samples were drawn `per_class` each (uniform over classes), so the champion's own
    p_old(c) re-weights each class's mean weight (importance sampling); a class without
    samples keeps weight p_old(c) · mean(w).
    """
    overall = float(weights.mean())
    updated = {}
    for index, label in enumerate(classes):
        mask = y == index
        mean_weight = float(weights[mask].mean()) if bool(mask.any()) else overall
        updated[label] = prior.get(label, 0.0) * mean_weight
    return updated


def _finetune(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    *,
    recipe: str,
    champion: str,
    preferences: DatasetHandle,
    shaped: DatasetHandle,
    reward: ImageReward,
    train_overrides: dict[str, Any] | None,
    eval_per_class: int,
    eval_seed: int,
    evaluate: bool,
    prior_weights: dict[str, float] | None = None,
) -> ImageRecipeResult:
    """Fine-tune, register, and give the challenger `prior_weights` as its class prior
    (None: it inherits the champion's)."""
    base = open_dataset_version(workspace, catalog, training_dataset_id(catalog, champion))
    train_cfg = config.train.model_copy(
        update={
            "epochs": config.improve.epochs,
            "learning_rate": config.improve.learning_rate,
            **(train_overrides or {}),
        }
    )
    events = int(preferences.manifest.get("feedback", {}).get("events", 0))
    trained = train_model(
        workspace,
        catalog,
        base,
        train_cfg,
        model_name=config.project.name,
        init_from=champion,
        # repeat 0: the preference set is recorded as the run's `feedback` dataset (lineage to the
        # events) while the shaped set, derived from it, carries the weights.
        extra_datasets=[(preferences, "feedback", 0), (shaped, recipe, 1)],
        alias="challenger",
        feedback_count=events,
    )
    challenger = trained.model_version_id
    challenger_prior = _write_prior(workspace, catalog, champion, challenger, prior_weights, recipe)
    champion_reward = mean_reward(
        workspace, catalog, champion, reward, per_class=eval_per_class, seed=eval_seed
    )
    challenger_reward = mean_reward(
        workspace, catalog, challenger, reward, per_class=eval_per_class, seed=eval_seed
    )
    champion_metrics = challenger_metrics = None
    if evaluate:
        champion_metrics = evaluate_model(workspace, catalog, champion, base, config.evaluate).metrics
        challenger_metrics = evaluate_model(workspace, catalog, challenger, base, config.evaluate).metrics
    return ImageRecipeResult(
        recipe,
        champion,
        challenger,
        preferences.id,
        shaped.id,
        int(shaped.manifest["records"]),
        champion_reward,
        challenger_reward,
        champion_metrics,
        challenger_metrics,
        challenger_prior,
    )


def _write_prior(
    workspace: Workspace,
    catalog: Catalog,
    champion: str,
    challenger: str,
    weights: dict[str, float] | None,
    recipe: str,
) -> dict[str, float] | None:
    parent = load_model_version(workspace, catalog, champion)
    if not parent.classes:
        return None
    child = load_model_version(workspace, catalog, challenger)
    if weights is None:
        weights, source = read_label_prior(parent.path, parent.classes), f"inherited from {champion}"
    else:
        source = f"{recipe} fine-tune of {champion}"
    return write_label_prior(child.path, weights, child.classes, source=source)


def _image_shape(loaded: LoadedModel) -> tuple[int, int]:
    return int(loaded.config.get("image_size", 28)), int(loaded.config.get("channels", 1))


def reward_weighted_finetune(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    preferences: DatasetHandle,
    reward: ImageReward,
    *,
    samples_per_class: int = 32,
    beta: float = 1.0,
    base_repeat: float = 2.0,
    max_repeat: int = 8,
    seed: int = 0,
    train_overrides: dict[str, Any] | None = None,
    eval_per_class: int = 16,
    eval_seed: int = 10_007,
    evaluate: bool = False,
) -> ImageRecipeResult:
    """Fine-tune the champion on its data plus reward-weighted samples and liked feedback images."""
    if beta < 0 or base_repeat <= 0 or max_repeat < 1:
        raise GenloopError(
            f"reward weighting needs beta ≥ 0, base_repeat > 0, max_repeat ≥ 1 "
            f"(got {beta}, {base_repeat}, {max_repeat})"
        )
    name = config.project.name
    champion = resolve_model_version(catalog, f"{name}@champion")
    loaded = load_model_version(workspace, catalog, champion)
    size, channels = _image_shape(loaded)
    x, y = sample_per_class(loaded.model, loaded, samples_per_class, seed)
    sample_scores = reward(x)
    generated = _generated_records(x, y, sample_scores, loaded, seed)
    liked, liked_x, liked_w = _liked_feedback(preferences, loaded, size, channels)
    scores = torch.cat([sample_scores, reward(liked_x) if len(liked) else torch.empty(0)])
    z = (scores - scores.mean()) / scores.std().clamp_min(1e-6)
    weights = torch.exp(beta * z) * torch.cat([torch.ones(len(generated)), liked_w])
    prior_weights = (
        reward_weighted_prior(
            read_label_prior(loaded.path, loaded.classes), loaded.classes, y, weights[: len(generated)]
        )
        if loaded.classes
        else None
    )
    repeats = _repeats(weights, base_repeat, max_repeat, seed)
    candidates = generated + [r.with_changes(split="train") for r in liked]
    records = [
        r.with_changes(meta={**r.meta, "weight": float(w), "repeat": k})
        for r, w, k in zip(candidates, weights, repeats, strict=True)
        for _ in range(k)
    ]
    if not records:
        raise DataError(
            "reward weighting kept no records (every repeat rounded to 0)", hint="raise base_repeat"
        )
    shaped = write_dataset_version(
        workspace,
        catalog,
        records,
        name=f"{name}-reward-weighted",
        stage="feedback",
        parent_id=preferences.id,
        classes=loaded.classes or None,
        extra={
            "recipe": {
                "kind": "reward-weighted",
                "champion": champion,
                "beta": beta,
                "base_repeat": base_repeat,
                "max_repeat": max_repeat,
                "samples_per_class": samples_per_class,
                "liked_feedback": len(liked),
                "seed": seed,
            }
        },
    )
    return _finetune(
        workspace, catalog, config, recipe="reward-weighted", champion=champion, preferences=preferences,
        shaped=shaped, reward=reward, train_overrides=train_overrides, eval_per_class=eval_per_class,
        eval_seed=eval_seed, evaluate=evaluate, prior_weights=prior_weights,
    )  # fmt: skip


def rejection_sampling_finetune(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    preferences: DatasetHandle,
    reward: ImageReward,
    *,
    samples_per_class: int = 64,
    keep_fraction: float = 0.25,
    repeat: int = 2,
    seed: int = 0,
    train_overrides: dict[str, Any] | None = None,
    eval_per_class: int = 16,
    eval_seed: int = 10_007,
    evaluate: bool = False,
) -> ImageRecipeResult:
    """Sample the champion, keep the top `keep_fraction` per class by reward, fine-tune on them."""
    if not 0 < keep_fraction <= 1 or repeat < 1:
        raise GenloopError(f"keep_fraction must be in (0, 1] and repeat ≥ 1 (got {keep_fraction}, {repeat})")
    name = config.project.name
    champion = resolve_model_version(catalog, f"{name}@champion")
    loaded = load_model_version(workspace, catalog, champion)
    x, y = sample_per_class(loaded.model, loaded, samples_per_class, seed)
    scores = reward(x)
    keep = max(1, math.ceil(keep_fraction * samples_per_class))
    chosen: list[int] = []
    for cls in y.unique().tolist():
        members = torch.nonzero(y == cls).flatten()
        best = members[scores[members].argsort(descending=True)[:keep]]
        chosen.extend(best.tolist())
    index = torch.tensor(sorted(chosen))
    kept = _generated_records(x[index], y[index], scores[index], loaded, seed)
    shaped = write_dataset_version(
        workspace,
        catalog,
        [r for r in kept for _ in range(repeat)],
        name=f"{name}-rejection-sampled",
        stage="feedback",
        parent_id=preferences.id,
        classes=loaded.classes or None,
        extra={
            "recipe": {
                "kind": "rejection-sampled",
                "champion": champion,
                "samples_per_class": samples_per_class,
                "kept_per_class": keep,
                "repeat": repeat,
                "seed": seed,
                "mean_reward_all": float(scores.mean()),
                "mean_reward_kept": float(scores[index].mean()),
            }
        },
    )
    return _finetune(
        workspace, catalog, config, recipe="rejection-sampled", champion=champion, preferences=preferences,
        shaped=shaped, reward=reward, train_overrides=train_overrides, eval_per_class=eval_per_class,
        eval_seed=eval_seed, evaluate=evaluate,
    )  # fmt: skip


def best_of_n_sampler(
    workspace: Workspace, catalog: Catalog, ref: str, reward: ImageReward, n: int
) -> tuple[LoadedModel, BestOfN]:
    """A model version and its best-of-`n` sampler (same `sample` signature as the model)."""
    loaded = load_model_version(workspace, catalog, ref)
    return loaded, BestOfN(loaded.model, reward, n)


__all__: Sequence[str] = (
    "BestOfN",
    "ImageRecipeResult",
    "ImageReward",
    "best_of_n_sampler",
    "mean_reward",
    "rejection_sampling_finetune",
    "reward_weighted_finetune",
    "sample_per_class",
)

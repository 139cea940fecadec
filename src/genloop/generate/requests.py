"""A generation request, and the items it stands for.

    GenerationRequest (model, conditions, count, params, seed, channel)
        → plan_items(…) → [ItemSpec(content_id, condition, index, seed), …]

The plan is pure: it needs the model's family and classes, not its weights. Every item's
seed comes from (request seed, condition, index) and its content id from (model version,
condition, seed, sampling parameters, channel policy), so the same request always names
the same items, and a re-run finds the ones already stored.

Conditions follow the family's modality:

    image (vae, gan, ddpm)        class labels, `per_class` each (all classes by default)
    text  (gpt, hf-causal-lm)     prompts, `count` each (one empty prompt by default)
    music (music)                 class labels (the classes it was trained with, e.g. keys
                                  or styles), `per_class` each; `count` when it has none

`draw=N` asks a conditional model for N items whose labels are drawn from its class
prior p(y) (models/label_prior.py) instead of `per_class` of every class: what "show
me what this model makes" means for a joint model, and what the loop publishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genloop.config import GenerateConfig, GenloopConfig
from genloop.errors import GenloopError
from genloop.generate.artifact import Modality
from genloop.models.label_prior import draw_labels, uniform_prior
from genloop.storage import stable_hash

FAMILY_MODALITY: dict[str, Modality] = {
    "vae": "image",
    "gan": "image",
    "ddpm": "image",
    "gpt": "text",
    "hf-causal-lm": "text",
    "music": "music",
}
MAX_TOKENS_PARAM = {"gpt": "max_tokens", "hf-causal-lm": "max_new_tokens", "music": "max_tokens"}
"""What each token family calls the length limit that requests call `max_new_tokens`."""


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    """Model version id, `name@alias`, or a model name (its champion)."""
    per_class: int = 8
    labels: Sequence[str] | None = None
    """Classes to draw (image and music models; default: every class the model knows)."""
    prompts: Sequence[str] | None = None
    """Text models: prompts to continue (default: one empty prompt, i.e. unconditional)."""
    count: int = 16
    """Text models: items per prompt; unconditional image/music models: items in all."""
    max_new_tokens: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    """Sampling parameters passed to the family (temperature, top_k, top_p, steps, …)."""
    seed: int = 0
    producer: str = "genloop"
    channel: str = "gallery"
    draw: int | None = None
    """Conditional image/music models: this many items, labels drawn from the model's class
    prior p(y), instead of `per_class` of each class (unconditional models: `count` items)."""

    @classmethod
    def from_config(cls, cfg: GenerateConfig, *, model: str) -> GenerationRequest:
        """The request `[generate]` in genloop.toml describes, for model version `model`."""
        return cls(
            model=model,
            per_class=cfg.per_class,
            prompts=list(cfg.prompts) or None,
            count=cfg.count,
            max_new_tokens=cfg.max_new_tokens,
            params=dict(cfg.params),
            seed=cfg.seed,
            producer=cfg.producer,
            channel=cfg.channel,
            draw=cfg.draw,
        )


@dataclass(frozen=True)
class ItemSpec:
    content_id: str
    condition: dict[str, str]
    """{"label": …}, {"prompt": …} or {} (unconditional)."""
    index: int
    seed: int


@dataclass(frozen=True)
class ItemPlan:
    """What a request expands to for one model version."""

    version_id: str
    family: str
    modality: Modality
    request_id: str
    params: dict[str, Any]
    """The family's sampling parameters (max_new_tokens under the family's own name)."""
    items: list[ItemSpec]


def item_seed(request_seed: int, key: str, index: int) -> int:
    """The seed of item `index` of condition `key` (a label or a prompt; "" when none)."""
    return int(stable_hash([request_seed, key, index], 8), 16) % (2**31)


def modality_of(family: str) -> Modality:
    if family not in FAMILY_MODALITY:
        raise GenloopError(
            f"model family {family!r} has no generation modality",
            hint=f"genloop generates from the families {', '.join(FAMILY_MODALITY)}",
        )
    return FAMILY_MODALITY[family]


def family_params(request: GenerationRequest, family: str) -> dict[str, Any]:
    params = dict(request.params)
    if request.max_new_tokens is not None and family in MAX_TOKENS_PARAM:
        params.setdefault(MAX_TOKENS_PARAM[family], request.max_new_tokens)
    return params


def _conditions(
    request: GenerationRequest, family: str, classes: list[str], where: str
) -> list[dict[str, str]]:
    modality = modality_of(family)
    if request.per_class < 1 or request.count < 1:
        raise GenloopError(
            f"{where}: per_class and count must be ≥ 1 (got per_class={request.per_class}, "
            f"count={request.count})"
        )
    if modality == "text":
        if request.labels:
            raise GenloopError(
                f"{where}: model family {family!r} makes text; it takes prompts, not class labels "
                f"(got {list(request.labels)})",
                hint="pass --prompt/-p instead of --label/-l",
            )
        prompts = list(request.prompts) if request.prompts else [""]
        return [{"prompt": p} for p in prompts]
    if request.prompts:
        raise GenloopError(
            f"{where}: model family {family!r} makes {modality}, conditioned on class labels, not prompts",
            hint=f"pass --label/-l with one of: {', '.join(classes) or '(none: the model is unconditional)'}",
        )
    if not classes:
        if request.labels:
            raise GenloopError(f"{where}: the model is unconditional; it has no class {request.labels[0]!r}")
        return [{}]
    labels = list(request.labels) if request.labels else list(classes)
    unknown = [label for label in labels if label not in classes]
    if unknown:
        raise GenloopError(
            f"{where}: model has no class {', '.join(map(repr, unknown))}",
            hint=f"known classes: {', '.join(classes)}",
        )
    return [{"label": label} for label in labels]


def _drawn_items(
    request: GenerationRequest, classes: list[str], prior: Mapping[str, float] | None, where: str
) -> list[tuple[dict[str, str], int, str]]:
    """(condition, index, seed key) of `request.draw` items with labels drawn from the prior."""
    assert request.draw is not None
    if request.draw < 1:
        raise GenloopError(f"{where}: draw must be ≥ 1 (got {request.draw})")
    if request.labels or request.prompts:
        raise GenloopError(
            f"{where}: draw picks the classes from the model's prior; it takes no labels or prompts",
            hint="drop --label/--prompt, or drop --draw to ask for given classes",
        )
    if not classes:
        return [({}, index, "") for index in range(request.draw)]
    labels = draw_labels(prior or uniform_prior(classes), request.draw, request.seed)
    # the seed key "prior-draw" keeps these seeds apart from the per-class ones
    return [({"label": label}, index, "prior-draw") for index, label in enumerate(labels)]


def plan_items(
    request: GenerationRequest,
    *,
    version_id: str,
    family: str,
    classes: list[str],
    config: GenloopConfig,
    label_prior: Mapping[str, float] | None = None,
) -> ItemPlan:
    """Every item of `request` for model version `version_id`, in a stable order.

    `label_prior` is the model's p(y) (uniform when None); only `request.draw` uses it.
    """
    where = f"generate from {version_id}"
    if request.draw is not None:
        if modality_of(family) == "text":
            raise GenloopError(f"{where}: draw is for image and music models; text models take prompts")
        slots = _drawn_items(request, classes, label_prior, where)
    else:
        slots = []
        for condition in _conditions(request, family, classes, where):
            key = condition.get("label", condition.get("prompt", ""))
            per_condition = request.per_class if "label" in condition else request.count
            slots.extend((condition, index, key) for index in range(per_condition))
    params = family_params(request, family)
    policy = {
        "channel": request.channel,
        "policy": config.channel_policy(request.channel).model_dump(mode="json"),
        "labels": config.generate.labels.model_dump(mode="json"),
        "producer": request.producer,
    }
    items = []
    for condition, index, key in slots:
        seed = item_seed(request.seed, key, index)
        content_id = stable_hash(
            {"model": version_id, "condition": condition, "seed": seed, "params": params, **policy}, 32
        )
        items.append(ItemSpec(content_id, condition, index, seed))
    request_id = stable_hash(
        {"model": version_id, "items": [item.content_id for item in items], "seed": request.seed}, 32
    )
    return ItemPlan(version_id, family, modality_of(family), request_id, params, items)

"""A conditional model's class prior p(y): which classes an unconditional draw asks for.

A class-conditional model is a joint model p(x, y) = p(y) · p(x | y). The network holds
p(x | y); this file holds p(y), beside config.json in the model version's directory:

    label_prior.json   {"prior": {LABEL: p, …}, "source": "…"}    (p ≥ 0, Σ p = 1)

A version without the file has the uniform prior over its classes (genloop's data sets
are balanced, and an explicit `--label`/`per_class` request never consults it). The
reward-weighted fine-tune (improve/image_recipes.py) writes the prior that maximises the
likelihood of its reward-shaped set, p(y) ∝ Σ_{i: yᵢ = y} repeatᵢ — the same weighted
data that fine-tunes p(x | y) — so "make more of what people like" moves both halves of
the model, and a draw from the challenger asks for the liked classes more often.

`draw_labels` is an inverse-CDF draw on one hashed uniform per index, so item i's label
depends only on (prior, seed, i): asking for more items keeps the first ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genloop.errors import GenloopError
from genloop.storage import atomic_write_json, stable_hash

PRIOR_FILE = "label_prior.json"


def uniform_prior(classes: Sequence[str]) -> dict[str, float]:
    return {label: 1.0 / len(classes) for label in classes} if classes else {}


def normalise_prior(weights: Mapping[str, float], classes: Sequence[str]) -> dict[str, float]:
    """`weights` (≥ 0, at least one > 0, only known classes) scaled to sum to 1, in `classes` order."""
    unknown = sorted(set(weights) - set(classes))
    if unknown:
        raise GenloopError(
            f"class prior names unknown classes {unknown}", hint=f"known classes: {', '.join(classes)}"
        )
    values = [float(weights.get(label, 0.0)) for label in classes]
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise GenloopError(
            f"a class prior needs finite weights ≥ 0 with a positive sum (got {dict(weights)})"
        )
    total = sum(values)
    return {label: v / total for label, v in zip(classes, values, strict=True)}


def read_label_prior(directory: Path, classes: Sequence[str]) -> dict[str, float]:
    """p(y) of the model saved in `directory` (uniform when it has no label_prior.json)."""
    path = directory / PRIOR_FILE
    if not path.is_file():
        return uniform_prior(classes)
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenloopError(
            f"{path}: unreadable class prior ({exc})", hint="delete it to use the uniform prior"
        ) from None
    prior = document.get("prior") if isinstance(document, dict) else None
    if not isinstance(prior, dict):
        raise GenloopError(
            f'{path}: not a class prior (expected {{"prior": {{label: p}}}})',
            hint="delete the file to fall back to the uniform prior",
        )
    return normalise_prior(prior, classes)


def write_label_prior(
    directory: Path, weights: Mapping[str, float], classes: Sequence[str], *, source: str
) -> dict[str, float]:
    prior = normalise_prior(weights, classes)
    atomic_write_json(directory / PRIOR_FILE, {"prior": prior, "source": source})
    return prior


def draw_labels(prior: Mapping[str, float], count: int, seed: int) -> list[str]:
    """`count` labels drawn from `prior`; label i depends only on (prior, seed, i)."""
    labels = [label for label, p in prior.items() if p > 0]
    if not labels:
        raise GenloopError("cannot draw from an empty class prior (the model has no classes)")
    cumulative, total = [], 0.0
    for label in labels:
        total += prior[label]
        cumulative.append(total)
    drawn = []
    for index in range(count):
        u = int(stable_hash(["label-draw", seed, index], 12), 16) / 16**12 * total
        drawn.append(next((lab for lab, c in zip(labels, cumulative, strict=True) if u < c), labels[-1]))
    return drawn

"""Diversity: the mean pairwise feature distance of a sample set, overall and per class.

A collapsed generator (every "sneaker" the same sneaker) has a small mean distance
between its samples' features. Read it against the same number for real images of
the class (`relative_diversity_per_class`): ≈ 1 is as varied as the data, ≪ 1 is
mode collapse, > 1 is usually noise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from genloop.errors import DataError
from genloop.evaluate.features import Features, as_features
from genloop.evaluate.neighbours import mean_pairwise_distance


def diversity(features: Features, *, what: str = "generated features") -> float:
    """Mean ‖xᵢ − xⱼ‖ over pairs i ≠ j of the feature set (N, D), N ≥ 2."""
    x = as_features(features, what=what, min_samples=2)
    return mean_pairwise_distance(x - x.mean(dim=0))


def diversity_per_class(
    features: Features,
    labels: Sequence[str] | Sequence[int] | torch.Tensor,
    *,
    what: str = "generated features",
) -> dict[str, float]:
    """{label: mean pairwise distance among that label's vectors}, labels in first-seen order."""
    x = as_features(features, what=what)
    keys = [str(label) for label in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)]
    if len(keys) != len(x):
        raise DataError(f"{what}: {len(x)} feature vectors but {len(keys)} labels; give one label per vector")
    too_few = [label for label, count in Counter(keys).items() if count < 2]
    if too_few:
        raise DataError(
            f"{what}: classes {too_few} have fewer than 2 samples; diversity needs pairs",
            hint="generate at least 2 samples per class",
        )
    rows: dict[str, list[int]] = {}
    for index, label in enumerate(keys):
        rows.setdefault(label, []).append(index)
    return {label: diversity(x[index], what=f"{what} of class {label!r}") for label, index in rows.items()}


def relative_diversity_per_class(
    generated: Features,
    generated_labels: Sequence[str] | Sequence[int] | torch.Tensor,
    real: Features,
    real_labels: Sequence[str] | Sequence[int] | torch.Tensor,
) -> dict[str, float]:
    """{label: generated / real diversity} per generated class (≈ 1: as varied as the data)."""
    ours = diversity_per_class(generated, generated_labels)
    reference = diversity_per_class(real, real_labels, what="real features")
    missing = sorted(set(ours) - set(reference))
    if missing:
        raise DataError(f"classes {missing} were generated but have no real features to compare with")
    return {
        label: value / reference[label] if reference[label] > 0 else float("inf")
        for label, value in ours.items()
    }

"""Memorisation: how close generated samples come to the training set, against a real baseline.

For each generated feature vector, the distance to its nearest training vector. Alone
that number has no scale, so the same is measured for real held-out images (test →
train): the threshold is the `quantile` of that real distribution, and

    share_closer = share of generated samples nearer a training sample than the threshold

A model that generalises like fresh real data scores ≈ `quantile` (its `expected_share`);
one that reproduces training images scores far above it (copies score 1.0).
Memory-bounded: 10k generated × 60k training vectors go through in blocks (`neighbours`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genloop.errors import DataError
from genloop.evaluate.features import Features, as_features, same_dimension
from genloop.evaluate.neighbours import kth_neighbour_distances

QUANTILE = 0.05


@dataclass(frozen=True)
class MemorisationResult:
    share_closer: float  # share of generated samples nearer a training sample than `threshold`
    expected_share: float  # what held-out real images score: `quantile` (by construction)
    threshold: float  # the `quantile` of real test → train nearest-neighbour distances
    quantile: float
    generated_median_distance: float  # median generated → train nearest-neighbour distance
    real_median_distance: float  # median test → train nearest-neighbour distance
    generated_count: int


def nearest_training_distances(
    features: Features, train: Features, *, what: str = "generated features"
) -> torch.Tensor:
    """(N,) Euclidean distance from each vector in `features` (N, D) to its nearest training vector."""
    queries = as_features(features, what=what)
    reference = as_features(train, what="training features")
    same_dimension(queries, reference, what_a=what, what_b="training features")
    centre = reference.mean(dim=0)  # a shared shift keeps ‖a‖²+‖b‖²−2a·b accurate
    return kth_neighbour_distances(queries - centre, reference - centre, 1)


def memorisation(
    generated: Features, train: Features, test: Features, *, quantile: float = QUANTILE
) -> MemorisationResult:
    """Share of generated samples nearer the training set than the nearest `quantile` of real test images."""
    if not 0.0 < quantile < 1.0:
        raise DataError(f"memorisation quantile must be between 0 and 1 (exclusive); got {quantile}")
    return memorisation_from_distances(
        nearest_training_distances(generated, train),
        nearest_training_distances(test, train, what="real test-split features"),
        quantile=quantile,
    )


def memorisation_from_distances(
    generated_distances: torch.Tensor, real_distances: torch.Tensor, *, quantile: float = QUANTILE
) -> MemorisationResult:
    """`memorisation` from nearest-training distances (N,) already measured.

    The real test → train distances depend only on the dataset: compute them once
    (`nearest_training_distances(test, train)`) and reuse them for every model version.
    """
    if not 0.0 < quantile < 1.0:
        raise DataError(f"memorisation quantile must be between 0 and 1 (exclusive); got {quantile}")
    if len(generated_distances) == 0 or len(real_distances) == 0:
        raise DataError("memorisation needs at least one generated and one real test distance")
    threshold = float(torch.quantile(real_distances.double(), quantile))
    return MemorisationResult(
        share_closer=float((generated_distances < threshold).double().mean()),
        expected_share=quantile,
        threshold=threshold,
        quantile=quantile,
        generated_median_distance=float(generated_distances.median()),
        real_median_distance=float(real_distances.median()),
        generated_count=len(generated_distances),
    )

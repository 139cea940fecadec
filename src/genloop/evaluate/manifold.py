"""Precision and recall of a generative model as k-NN manifold coverage (k = 3).

Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models" (https://arxiv.org/abs/1904.06991), §2. Each set's manifold is the
union of balls around its vectors, each ball's radius the distance to that vector's
k-th nearest neighbour within its own set:

    precision = share of generated vectors inside the real manifold   (are samples realistic?)
    recall    = share of real vectors inside the generated manifold   (is the data covered?)

A model that makes only half the classes well scores high precision and recall ≈ 0.5;
FD alone cannot tell that apart from blurry samples of every class.
"""

from __future__ import annotations

from dataclasses import dataclass

from genloop.errors import DataError
from genloop.evaluate.features import Features, as_features, same_dimension
from genloop.evaluate.neighbours import kth_neighbour_distances, mutual_coverage

NEIGHBOURS = 3  # the paper's choice for its main experiments


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float  # share of generated vectors within the real manifold
    recall: float  # share of real vectors within the generated manifold
    k: int


def precision_recall(generated: Features, real: Features, *, k: int = NEIGHBOURS) -> PrecisionRecall:
    """k-NN manifold precision and recall of `generated` (N₁, D) against `real` (N₂, D)."""
    if k < 1:
        raise DataError(f"precision/recall needs k ≥ 1 neighbours; got k = {k}")
    fake = as_features(generated, what="generated features", min_samples=k + 1)
    true = as_features(real, what="real features", min_samples=k + 1)
    same_dimension(fake, true, what_a="generated features", what_b="real features")
    centre = true.mean(dim=0)  # one shared shift: smaller norms, less cancellation in ‖a‖²+‖b‖²−2a·b
    fake, true = fake - centre, true - centre
    real_radii = kth_neighbour_distances(true, true, k, exclude_self=True)
    fake_radii = kth_neighbour_distances(fake, fake, k, exclude_self=True)
    realistic, covered = mutual_coverage(fake, true, fake_radii, real_radii)
    return PrecisionRecall(
        precision=float(realistic.double().mean()), recall=float(covered.double().mean()), k=k
    )

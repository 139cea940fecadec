"""Fréchet distance between Gaussians fitted to two feature sets (the "FID" recipe).

Heusel et al. 2017 (https://arxiv.org/abs/1706.08500), eq. 6, with genloop's own
real-data LeNet in place of Inception — so report it as "Fréchet distance, LeNet-style
features trained on DATASET", never as FID comparable with published numbers:

    FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)

Stable in float64 without a general matrix square root: Σ₁Σ₂ is similar to the
symmetric PSD matrix M = Σ₁^½ Σ₂ Σ₁^½ (M = Σ₁^½ (Σ₁Σ₂) Σ₁^-½), so
Tr((Σ₁Σ₂)^½) = Σᵢ √λᵢ(M), with Σ₁^½ and λ(M) from symmetric eigendecompositions and
round-off negatives clipped to 0. Singular covariances (dead ReLU units, fewer samples
than dimensions) need no ε offset, unlike the `scipy.linalg.sqrtm(Σ₁Σ₂)` path.

The estimate is biased upward for finite N (it is not 0 for two samples of one
distribution), which is why `real_vs_real_floor` reports train-vs-test beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genloop.errors import DataError
from genloop.evaluate.features import Features, as_features


@dataclass(frozen=True)
class GaussianStats:
    """Mean (D,) and covariance (D, D) of a feature set of `count` vectors, float64.

    Fit once for the real data and reuse it against every model version.
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: int

    @classmethod
    def fit(cls, features: Features, *, what: str = "feature set") -> GaussianStats:
        x = as_features(features, what=what, min_samples=2).numpy()
        # unbiased covariance (divide by N − 1), as numpy.cov and the reference FID code
        return cls(
            mean=x.mean(axis=0), covariance=np.cov(x, rowvar=False).reshape(x.shape[1], -1), count=len(x)
        )


def frechet_distance(
    first: Features | GaussianStats,
    second: Features | GaussianStats,
    *,
    what_first: str = "generated features",
    what_second: str = "real features",
) -> float:
    """FD between two feature sets (N₁, D), (N₂, D) — or their precomputed `GaussianStats`."""
    a = first if isinstance(first, GaussianStats) else GaussianStats.fit(first, what=what_first)
    b = second if isinstance(second, GaussianStats) else GaussianStats.fit(second, what=what_second)
    if a.mean.shape != b.mean.shape:
        raise DataError(
            f"{what_first} has {a.mean.shape[0]}-d features "
            f"but {what_second} has {b.mean.shape[0]}-d features",
            hint="extract both sets with the same feature network",
        )
    return frechet_distance_between(a, b)


def frechet_distance_between(a: GaussianStats, b: GaussianStats) -> float:
    """‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Σᵢ √λᵢ(Σ₁^½ Σ₂ Σ₁^½); ≥ 0 (tiny round-off negatives → 0)."""
    difference = a.mean - b.mean
    sqrt_first = _psd_sqrt(a.covariance)
    middle = sqrt_first @ b.covariance @ sqrt_first  # (D, D), symmetric PSD up to round-off
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0).clip(min=0.0)
    trace_sqrt_product = float(np.sqrt(eigenvalues).sum())
    distance = float(difference @ difference + np.trace(a.covariance) + np.trace(b.covariance))
    return max(distance - 2.0 * trace_sqrt_product, 0.0)


def real_vs_real_floor(train: Features | GaussianStats, test: Features | GaussianStats) -> float:
    """FD between the real train and test splits: what a perfect model would still score.

    Read a model's FD against it: it is directly comparable when the model is scored
    with as many generated samples as there are test features, against the same train
    statistics (FD's finite-sample bias depends on both counts).
    """
    return frechet_distance(
        test, train, what_first="real test-split features", what_second="real train-split features"
    )


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix: V diag(√max(λ, 0)) Vᵀ."""
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(eigenvalues.clip(min=0.0))) @ vectors.T

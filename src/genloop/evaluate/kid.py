"""Kernel Inception Distance: an unbiased MMD² with a cubic polynomial kernel, over subsets.

Bińkowski et al. 2018, "Demystifying MMD GANs" (https://arxiv.org/abs/1801.01401),
§4 — computed on genloop's real-data LeNet features, not Inception (say so when
reporting). Unlike FD it has an unbiased estimator, so two samples of one distribution
score ≈ 0 (within its std) at any sample count, and it can go slightly negative.

    k(x, y) = (x·y / d + 1)³
    MMD²_u = Σ_{i≠j} k(xᵢ, xⱼ) / (m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ) / (m(m−1)) − 2 Σ_{i,j} k(xᵢ, yⱼ) / m²

averaged over `subsets` random subsets of `subset_size` vectors from each set (drawn
without replacement within a subset; seeded), as the reference implementation does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genloop.errors import DataError
from genloop.evaluate.features import Features, as_features, same_dimension

SUBSETS = 100
SUBSET_SIZE = 1000


@dataclass(frozen=True)
class KIDResult:
    mean: float  # mean MMD² over the subsets (lower is better; ≈ 0 for one distribution)
    std: float  # standard deviation of the subset estimates (0 with one subset)
    subsets: int
    subset_size: int


def kernel_inception_distance(
    generated: Features,
    real: Features,
    *,
    subsets: int = SUBSETS,
    subset_size: int = SUBSET_SIZE,
    seed: int = 0,
) -> KIDResult:
    """KID between feature sets (N₁, D) and (N₂, D); 2 ≤ subset_size ≤ the smaller set's size."""
    x = as_features(generated, what="generated features", min_samples=2)
    y = as_features(real, what="real features", min_samples=2)
    same_dimension(x, y, what_a="generated features", what_b="real features")
    if subsets < 1:
        raise DataError(f"KID needs at least one subset; got subsets = {subsets}")
    smallest = min(len(x), len(y))
    if not 2 <= subset_size <= smallest:
        raise DataError(
            f"KID subset_size = {subset_size} must be between 2 and the smaller set's size ({smallest})",
            hint=f"pass subset_size={smallest} or evaluate more samples",
        )
    generator = torch.Generator().manual_seed(seed)
    estimates = torch.empty(subsets, dtype=torch.float64)
    for index in range(subsets):
        rows_x = torch.randperm(len(x), generator=generator)[:subset_size]
        rows_y = torch.randperm(len(y), generator=generator)[:subset_size]
        estimates[index] = unbiased_mmd2(x[rows_x], y[rows_y])
    std = float(estimates.std(unbiased=True)) if subsets > 1 else 0.0
    return KIDResult(mean=float(estimates.mean()), std=std, subsets=subsets, subset_size=subset_size)


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, D), (m, D) → (n, m) of (a·b / D + 1)³."""
    one = torch.ones((), dtype=a.dtype)
    return torch.addmm(one, a, b.T, alpha=1.0 / a.shape[1]).pow_(3)  # fused, in place: 2 passes over (n, m)


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """MMD²_u between equally sized sets x, y (m, D), m ≥ 2, with the cubic kernel."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))  # i ≠ j: drop the diagonal
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * k_xy.sum() / (m * m))

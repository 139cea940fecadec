"""KID: ≈ 0 for one distribution, larger for a shifted one, equal to a direct O(n²) reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from genloop.errors import DataError
from genloop.evaluate.kid import kernel_inception_distance


def reference_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, written as the plain double sums."""
    m, d = x.shape

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / d + 1.0) ** 3)

    within_x = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    between = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return within_x + within_y - 2.0 * between


def gaussian(count: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, dim)) + shift


def test_matches_the_direct_double_sum() -> None:
    x, y = gaussian(60, 5, seed=0), gaussian(60, 5, seed=1, shift=0.3) * 1.2
    # one subset holding every vector: MMD² does not depend on the order the subset draws them in
    result = kernel_inception_distance(x, y, subsets=1, subset_size=60)
    assert result.mean == pytest.approx(reference_mmd2(x, y), rel=1e-10, abs=1e-12)
    assert (result.std, result.subsets, result.subset_size) == (0.0, 1, 60)


def test_same_distribution_scores_zero_within_its_spread() -> None:
    result = kernel_inception_distance(
        gaussian(2000, 32, seed=0), gaussian(2000, 32, seed=1), subsets=20, subset_size=500
    )
    assert abs(result.mean) < result.std
    assert result.std > 0


def test_grows_with_the_shift_between_sets() -> None:
    real = gaussian(1500, 32, seed=0)
    scores = [
        kernel_inception_distance(gaussian(1500, 32, seed=1, shift=shift), real, subsets=10, subset_size=500)
        for shift in (0.0, 0.1, 0.3, 1.0)
    ]
    means = [score.mean for score in scores]
    assert all(later > earlier for earlier, later in itertools.pairwise(means))
    assert means[-1] > 10 * scores[0].std + abs(means[0])


def test_is_seeded() -> None:
    x, y = gaussian(300, 8, seed=0), gaussian(300, 8, seed=1, shift=0.2)
    first = kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=3)
    assert kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=3) == first
    assert kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=4) != first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subset_size": 101}, "subset_size = 101 must be between 2 and the smaller set's size \\(100\\)"),
        ({"subset_size": 1}, "subset_size = 1"),
        ({"subsets": 0}, "at least one subset"),
    ],
)
def test_bad_settings_fail_clearly(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        kernel_inception_distance(gaussian(100, 4, seed=0), gaussian(200, 4, seed=1), **kwargs)


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(DataError, match="generated features is empty"):
        kernel_inception_distance(np.zeros((0, 4)), gaussian(10, 4, seed=0), subset_size=5)
    with pytest.raises(DataError, match="4-d features but real features has 3-d"):
        kernel_inception_distance(gaussian(10, 4, seed=0), gaussian(10, 3, seed=0), subset_size=5)
    with pytest.raises(DataError, match="NaN or infinite"):
        kernel_inception_distance(np.full((10, 4), np.inf), gaussian(10, 4, seed=0), subset_size=5)

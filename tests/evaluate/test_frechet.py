"""Fréchet distance: ≈ 0 on identical sets, monotone in added noise, equal to scipy's sqrtm path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
import torch

from genloop.errors import DataError
from genloop.evaluate.classifier import LeNet
from genloop.evaluate.frechet import GaussianStats, frechet_distance, real_vs_real_floor


def correlated_features(count: int, dim: int, seed: int) -> np.ndarray:
    """Gaussian features with a random full covariance and a non-zero mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(count, dim)) @ mixing + rng.normal(size=dim)


def lenet_features(count: int, seed: int) -> np.ndarray:
    """Real feature-network output: an (untrained) LeNet's 128-d embedding of blurred noise images."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.avg_pool2d(torch.rand(count, 1, 28, 28, generator=generator), 3, 1, 1)
    torch.manual_seed(0)
    return LeNet(channels=1, num_classes=10).embed(images).double().numpy()


def scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The classic FID computation: general matrix square root of Σ₁Σ₂ (scipy.linalg.sqrtm)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_identical_sets_score_zero() -> None:
    x = correlated_features(2000, 32, seed=0)
    assert frechet_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-8)
    features = lenet_features(600, seed=1)  # singular covariance (dead ReLUs, 128-d from 600 samples)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_grows_monotonically_with_added_noise() -> None:
    x = correlated_features(3000, 16, seed=0)
    noise = np.random.default_rng(1).normal(size=x.shape)
    distances = [frechet_distance(x + sigma * noise, x) for sigma in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)]
    assert distances[0] == pytest.approx(0.0, abs=1e-8)
    assert all(later > earlier for earlier, later in itertools.pairwise(distances))
    # covariance Σ + σ²I against Σ: at σ = 2 the trace term alone adds ≥ 16·4·(1 − …): clearly large
    assert distances[-1] > 10


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # scipy's path on dead-ReLU covariances
@pytest.mark.parametrize("source", ["gaussian", "lenet"])
def test_matches_scipy_sqrtm_reference(source: str) -> None:
    if source == "gaussian":
        a, b = correlated_features(2000, 64, seed=0), correlated_features(1500, 64, seed=1)
    else:
        a, b = lenet_features(1000, seed=0), lenet_features(800, seed=1) * 1.5 + 0.05
    ours = frechet_distance(a, b)
    assert ours > 1e-3  # a real comparison, not 0 vs 0
    assert ours == pytest.approx(scipy_reference(a, b), abs=1e-3)


def test_accepts_tensors_and_precomputed_statistics() -> None:
    a, b = correlated_features(500, 8, seed=0), correlated_features(400, 8, seed=1)
    expected = frechet_distance(a, b)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(expected, rel=1e-5)
    stats = GaussianStats.fit(b)
    assert stats.count == 400 and stats.covariance.shape == (8, 8)
    assert frechet_distance(a, stats) == pytest.approx(expected, rel=1e-12)


def test_real_vs_real_floor_is_small_beside_a_shifted_model() -> None:
    real = correlated_features(5000, 16, seed=0)  # one distribution, split 4:1 as train / test
    train, test = real[:4000], real[4000:]
    floor = real_vs_real_floor(train, test)
    assert floor == frechet_distance(test, train)
    assert 0 < floor < 0.2
    assert frechet_distance(test + 0.5, train) > 10 * floor


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (np.zeros((0, 4)), np.ones((5, 4)), "is empty"),
        (np.ones((5, 4)), np.ones((5, 3)), "4-d features but real features has 3-d"),
        (np.ones((1, 4)), np.ones((5, 4)), "has 1 feature vector(s); this metric needs at least 2"),
        (np.ones(4), np.ones((5, 4)), "must be a 2-D array"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), np.ones((5, 2)), "NaN or infinite values in 1 of 2 rows"),
    ],
)
def test_bad_input_fails_clearly(first: np.ndarray, second: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        frechet_distance(first, second)

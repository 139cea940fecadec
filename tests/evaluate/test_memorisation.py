"""Memorisation: copies of training images are flagged, fresh samples score like real held-out data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genloop.errors import DataError
from genloop.evaluate import neighbours
from genloop.evaluate.memorisation import (
    memorisation,
    memorisation_from_distances,
    nearest_training_distances,
)


def gaussian(count: int, seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, dim)) * 3 + 5


def test_nearest_training_distances_match_a_full_matrix_in_small_blocks() -> None:
    train, generated = gaussian(503, seed=0), gaussian(97, seed=1)
    expected = torch.cdist(torch.from_numpy(generated), torch.from_numpy(train)).min(dim=1).values
    with pytest.MonkeyPatch.context() as patch:  # many blocks both ways, ragged last blocks
        patch.setattr(neighbours, "BLOCK_ROWS", 10)
        patch.setattr(neighbours, "BLOCK_COLS", 64)
        blocked = nearest_training_distances(generated, train)
    assert blocked.shape == (97,)
    assert torch.allclose(blocked, expected, rtol=1e-9, atol=1e-9)
    copies = nearest_training_distances(train[:5], train)  # exact copies: 0 up to the expansion's √ε
    assert torch.allclose(copies, torch.zeros(5, dtype=torch.float64), atol=1e-6)


def test_copies_of_training_samples_are_flagged() -> None:
    train, test = gaussian(2000, seed=0), gaussian(500, seed=1)
    copies = train[:400] + np.random.default_rng(2).normal(size=(400, 8)) * 1e-3  # near-exact copies
    result = memorisation(copies, train, test)
    assert result.share_closer == 1.0
    assert result.generated_median_distance < 0.01 < result.threshold < result.real_median_distance


def test_fresh_samples_score_like_held_out_real_data() -> None:
    train, test = gaussian(2000, seed=0), gaussian(1000, seed=1)
    result = memorisation(gaussian(1000, seed=2), train, test, quantile=0.1)
    assert result.expected_share == result.quantile == 0.1
    assert result.share_closer == pytest.approx(0.1, abs=0.04)
    assert result.generated_median_distance == pytest.approx(result.real_median_distance, rel=0.1)
    assert result.generated_count == 1000


def test_cached_real_distances_give_the_same_result() -> None:
    train, test, generated = gaussian(800, seed=0), gaussian(300, seed=1), gaussian(300, seed=2)
    real_distances = nearest_training_distances(test, train)  # once per dataset
    cached = memorisation_from_distances(nearest_training_distances(generated, train), real_distances)
    assert cached == memorisation(generated, train, test)


def test_half_copied_model_scores_about_half() -> None:
    train, test = gaussian(2000, seed=0), gaussian(1000, seed=1)
    half = np.concatenate([train[:500], gaussian(500, seed=3)])
    assert memorisation(half, train, test).share_closer == pytest.approx(0.5 + 0.5 * 0.05, abs=0.03)


def test_bad_input_fails_clearly() -> None:
    train = gaussian(50, seed=0)
    with pytest.raises(DataError, match="generated features is empty"):
        memorisation(np.zeros((0, 8)), train, gaussian(10, seed=1))
    with pytest.raises(
        DataError, match="real test-split features has 4-d features but training features has 8-d"
    ):
        memorisation(gaussian(10, seed=2), train, np.ones((10, 4)))
    with pytest.raises(DataError, match="quantile must be between 0 and 1"):
        memorisation(gaussian(10, seed=2), train, gaussian(10, seed=1), quantile=1.0)

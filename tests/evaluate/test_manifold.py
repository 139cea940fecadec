"""k-NN manifold precision/recall (k = 3) on synthetic sets whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genloop.errors import DataError
from genloop.evaluate import neighbours
from genloop.evaluate.manifold import precision_recall

DIM = 3  # low: with a few hundred points per mode, k-NN balls then cover ≈ 95 % of a mode
CENTRES = np.random.default_rng(42).normal(size=(10, DIM)) * 100  # 10 modes, far apart vs unit spread


def modes(which: list[int], per_mode: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([CENTRES[mode] + rng.normal(size=(per_mode, DIM)) for mode in which])


def test_identical_sets_have_full_precision_and_recall() -> None:
    real = modes(list(range(10)), 50, seed=0)
    result = precision_recall(real, real.copy())
    assert (result.precision, result.recall, result.k) == (1.0, 1.0, 3)


def test_disjoint_sets_have_none() -> None:
    real = modes([0, 1, 2], 100, seed=0)
    result = precision_recall(modes([5, 6, 7], 100, seed=1), real)
    assert (result.precision, result.recall) == (0.0, 0.0)


def test_a_model_covering_half_the_modes() -> None:
    real = modes(list(range(10)), 200, seed=0)
    result = precision_recall(modes([0, 1, 2, 3, 4], 200, seed=1), real)
    assert result.precision > 0.9  # its samples are realistic ...
    assert result.recall == pytest.approx(0.5, abs=0.05)  # ... but half of the data is never made
    everything = precision_recall(modes(list(range(10)), 200, seed=1), real)
    assert everything.recall > 0.9  # the same model making every mode covers (nearly) all of it


def test_two_samples_of_one_distribution_score_high() -> None:
    result = precision_recall(modes(list(range(10)), 100, seed=1), modes(list(range(10)), 100, seed=0))
    assert result.precision > 0.85 and result.recall > 0.85


def test_blocked_computation_equals_one_block() -> None:
    fake, real = modes(list(range(10)), 30, seed=1), modes(list(range(6)), 40, seed=0)
    whole = precision_recall(fake, real)
    with (
        pytest.MonkeyPatch.context() as patch
    ):  # force many (rows × cols) blocks and the diagonal inside them
        patch.setattr(neighbours, "BLOCK_ROWS", 7)
        patch.setattr(neighbours, "BLOCK_COLS", 11)
        assert precision_recall(fake, real) == whole


def test_kth_neighbour_distances_match_a_full_matrix() -> None:
    x = torch.from_numpy(modes([0, 1], 40, seed=3))
    full = torch.cdist(x, x).fill_diagonal_(float("inf")).topk(3, dim=1, largest=False).values[:, -1]
    blocked = neighbours.kth_neighbour_distances(x, x, 3, exclude_self=True, block_rows=9, block_cols=6)
    assert torch.allclose(blocked, full, rtol=1e-9, atol=1e-9)


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(DataError, match="real features has 3 feature vector"):
        precision_recall(modes([0], 10, seed=0), modes([0], 10, seed=1)[:3])
    with pytest.raises(DataError, match="3-d features but real features has 8-d"):
        precision_recall(modes([0], 10, seed=0), np.ones((10, 8)))
    with pytest.raises(DataError, match="k ≥ 1"):
        precision_recall(modes([0], 10, seed=0), modes([0], 10, seed=1), k=0)

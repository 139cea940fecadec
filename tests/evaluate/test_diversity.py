"""Diversity: mean pairwise feature distance, per class, and relative to the real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genloop.errors import DataError
from genloop.evaluate.diversity import diversity, diversity_per_class, relative_diversity_per_class


def test_equals_the_mean_over_all_pairs() -> None:
    x = np.random.default_rng(0).normal(size=(37, 5)) + 10
    # the exact pairwise distances (the matrix-product shortcut loses digits at this offset)
    pairwise = torch.cdist(
        torch.from_numpy(x), torch.from_numpy(x), compute_mode="donot_use_mm_for_euclid_dist"
    )
    assert diversity(x) == pytest.approx(float(pairwise.sum()) / (37 * 36), rel=1e-9)
    assert diversity(np.ones((4, 5))) == 0.0  # a fully collapsed set


def test_per_class_and_relative_to_real_data() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 6))
    # the model's shirts are as varied as real ones; its shoes collapse to a tenth of the spread
    generated = np.concatenate([rng.normal(size=(100, 6)), rng.normal(size=(100, 6)) * 0.1])
    per_class = diversity_per_class(generated, ["shirt"] * 100 + ["shoe"] * 100)
    assert list(per_class) == ["shirt", "shoe"] and per_class["shoe"] < per_class["shirt"] / 5
    relative = relative_diversity_per_class(
        generated, torch.tensor([0] * 100 + [1] * 100), real, [0] * 100 + [1] * 100
    )
    assert relative["0"] == pytest.approx(1.0, abs=0.1) and relative["1"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(DataError, match=r"classes \['shoe'\] were generated but have no real features"):
        relative_diversity_per_class(generated, ["shirt"] * 100 + ["shoe"] * 100, real, ["shirt"] * 200)


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(DataError, match="5 feature vectors but 4 labels"):
        diversity_per_class(np.ones((5, 2)), ["a"] * 4)
    with pytest.raises(DataError, match=r"classes \['b'\] have fewer than 2 samples"):
        diversity_per_class(np.ones((5, 2)), ["a"] * 4 + ["b"])
    with pytest.raises(DataError, match="needs at least 2"):
        diversity(np.ones((1, 2)))

"""Cohen's and Fleiss' kappa against textbook examples computed by hand, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from genloop.data.annotate.agreement import (
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_counts,
    interpretation,
)

# Wikipedia's "Fleiss' kappa" worked example: 10 items, 14 raters, 5 categories.
# P̄ = 0.378, P̄e = 0.213, κ = (0.378 − 0.213) / (1 − 0.213) = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_worked_example() -> None:
    assert fleiss_kappa_counts(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_from_label_lists_matches_the_count_table() -> None:
    categories = "abcde"
    ratings = [[categories[j] for j, n in enumerate(row) for _ in range(n)] for row in FLEISS_TABLE]
    assert fleiss_kappa(ratings) == pytest.approx(fleiss_kappa_counts(FLEISS_TABLE))


def test_cohen_wikipedia_example() -> None:
    # 50 items: both yes 20, both no 15, A yes/B no 5, A no/B yes 10.
    # p_o = 35/50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = 0.2/0.5 = 0.4.
    a = ["yes"] * 20 + ["no"] * 15 + ["yes"] * 5 + ["no"] * 10
    b = ["yes"] * 20 + ["no"] * 15 + ["no"] * 5 + ["yes"] * 10
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_matches_sklearn_on_random_labels() -> None:
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(0)
    for trial in range(20):
        a = rng.choice(["x", "y", "z"], size=60)
        # Second annotator agrees with the first 60% of the time, else random.
        b = np.where(rng.random(60) < 0.6, a, rng.choice(["x", "y", "z"], size=60))
        expected = metrics.cohen_kappa_score(a, b)
        assert cohen_kappa(list(a), list(b)) == pytest.approx(expected, abs=1e-12), trial


def test_two_raters_fleiss_is_close_to_cohen_and_perfect_is_one() -> None:
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0  # p_e = 1: reported as perfect agreement
    assert fleiss_kappa([["a", "b"], ["b", "a"]]) < 0  # systematic disagreement is worse than chance
    assert interpretation(0.21) == "fair" and interpretation(0.85) == "almost perfect"


@pytest.mark.parametrize(
    ("table", "message"),
    [([[2, 0], [1, 0]], "same number of ratings"), ([[1, 0]], "at least 2 ratings"), ([], "at least one")],
)
def test_fleiss_refuses_unusable_tables(table: list[list[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fleiss_kappa_counts(table)


def test_cohen_refuses_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])

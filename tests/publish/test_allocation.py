"""Thompson sampling between champion and challenger, and the promote / retire rule."""

from __future__ import annotations

import numpy as np
import pytest

from genloop.errors import GenloopError
from genloop.publish.allocation import ArmCounts, decide, probability_better, thompson_choose


def test_exact_probability_matches_monte_carlo_and_symmetry() -> None:
    a, b = ArmCounts("a", 30, 70), ArmCounts("b", 45, 55)
    exact = probability_better(a, b)
    rng = np.random.default_rng(1)
    sampled = float(np.mean(rng.beta(46, 56, 400_000) > rng.beta(31, 71, 400_000)))
    assert exact == pytest.approx(sampled, abs=3e-3)
    assert exact + probability_better(b, a) == pytest.approx(1.0, abs=1e-9)
    assert probability_better(ArmCounts("x", 5, 5), ArmCounts("y", 5, 5)) == pytest.approx(0.5, abs=1e-9)


def test_fractional_counts_from_ratings_use_the_estimate() -> None:
    liked = ArmCounts.from_events("b", ratings=[5, 5, 4, 5, 4] * 10)
    meh = ArmCounts.from_events("a", ratings=[2, 3, 2, 1, 3] * 10)
    assert liked.successes == pytest.approx(0.9 * 50)
    assert probability_better(meh, liked) > 0.999
    with pytest.raises(GenloopError, match="1–5"):
        ArmCounts.from_events("c", ratings=[6])


def test_the_bandit_converges_to_the_better_arm_on_a_synthetic_stream() -> None:
    true_rate = {"champion": 0.10, "challenger": 0.25}
    counts = {arm: [0, 0] for arm in true_rate}
    rng = np.random.default_rng(7)
    shown = {arm: 0 for arm in true_rate}
    for _ in range(3000):
        arms = [ArmCounts(arm, *counts[arm]) for arm in true_rate]
        arm = thompson_choose(arms, rng, min_exposure=50)
        shown[arm] += 1
        liked = rng.random() < true_rate[arm]
        counts[arm][0 if liked else 1] += 1
    assert shown["challenger"] / 3000 > 0.8  # exposure went to the better arm
    assert min(shown.values()) >= 50  # and each arm got its minimum exposure
    champion, challenger = (ArmCounts(arm, *counts[arm]) for arm in ("champion", "challenger"))
    decision = decide(champion, challenger, min_exposure=50)
    assert decision.action == "promote" and decision.p_challenger_better >= 0.95


def test_promote_retire_and_continue_as_specified() -> None:
    champion = ArmCounts("digits-v1", 20, 180)  # 10 %
    better, worse = ArmCounts("digits-v2", 60, 140), ArmCounts("digits-v3", 4, 196)
    assert decide(champion, better).action == "promote"
    retired = decide(champion, worse)
    assert retired.action == "retire" and retired.p_challenger_better <= 0.05
    assert "≤ 0.05" in retired.reason and retired.champion_counts == (20, 180)
    close = decide(champion, ArmCounts("digits-v4", 22, 178))
    assert close.action == "continue" and 0.05 < close.p_challenger_better < 0.95
    # Overwhelming odds but too little exposure: keep allocating.
    early = decide(ArmCounts("a", 0, 10), ArmCounts("b", 10, 0), min_exposure=100)
    assert early.action == "continue" and "minimum exposure" in early.reason
    assert decide(champion, better).as_json()["challenger"] == "digits-v2"


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(GenloopError, match="non-negative"):
        ArmCounts("a", -1, 3)
    with pytest.raises(GenloopError, match="no arms"):
        thompson_choose([], np.random.default_rng(0))
    with pytest.raises(GenloopError, match="retire_at"):
        decide(ArmCounts("a", 1, 1), ArmCounts("b", 1, 1), promote_at=0.1, retire_at=0.5)

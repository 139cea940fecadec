"""Live allocation between a champion and its challengers: Thompson sampling on the like-rate.

Each arm's like-rate p has a Beta posterior under a uniform prior::

    p | s likes, f dislikes  ~  Beta(1 + s, 1 + f)

Thompson sampling draws one p per arm and shows the arm with the largest draw, so
exposure flows to the better arm as evidence builds while the worse one keeps getting
the occasional look. Ratings 1–5 count as fractional outcomes: a rating r adds
(r − 1) / 4 to successes and the rest to failures.

The decision rule (`decide`) compares challenger B with champion A by

    P(p_B > p_A | data) = Σ_{i=0}^{α_B − 1} B(α_A + i, β_A + β_B) / ((β_B + i) · B(1 + i, β_B) · B(α_A, β_A))

(exact for integer posterior parameters; fractional ones use a seeded Monte-Carlo
estimate), and, once each arm has at least `min_exposure` outcomes:

    P ≥ promote_at (0.95)  → promote the challenger
    P ≤ retire_at  (0.05)  → retire it
    otherwise              → keep allocating

Every decision carries its numbers (counts, posterior means, P) so it can be recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from genloop.errors import GenloopError

MONTE_CARLO_DRAWS = 200_000
EXACT_TERMS_LIMIT = 100_000
"""Above this many terms in the exact sum, the Monte-Carlo estimate is used instead."""


@dataclass(frozen=True)
class ArmCounts:
    arm: str
    """The model version id (or any arm name)."""
    successes: float
    failures: float

    def __post_init__(self) -> None:
        if (
            self.successes < 0
            or self.failures < 0
            or not (math.isfinite(self.successes) and math.isfinite(self.failures))
        ):
            raise GenloopError(
                f"arm {self.arm!r}: counts must be finite and non-negative "
                f"(got {self.successes} likes, {self.failures} dislikes)"
            )

    @property
    def outcomes(self) -> float:
        return self.successes + self.failures

    @property
    def alpha(self) -> float:
        return 1.0 + self.successes

    @property
    def beta(self) -> float:
        return 1.0 + self.failures

    @property
    def posterior_mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @classmethod
    def from_events(
        cls, arm: str, *, likes: int = 0, dislikes: int = 0, ratings: Sequence[float] = ()
    ) -> ArmCounts:
        """Likes and dislikes count 1 each; a rating r in 1..5 counts (r − 1)/4 and 1 − (r − 1)/4."""
        bad = [r for r in ratings if not 1 <= r <= 5]
        if bad:
            raise GenloopError(f"arm {arm!r}: ratings must be 1–5 (got {bad[:3]})")
        rated = sum((r - 1) / 4 for r in ratings)
        return cls(arm, likes + rated, dislikes + len(ratings) - rated)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def probability_better(champion: ArmCounts, challenger: ArmCounts, *, seed: int = 0) -> float:
    """P(challenger's like-rate > champion's) under both Beta posteriors."""
    a_a, b_a, a_b, b_b = champion.alpha, champion.beta, challenger.alpha, challenger.beta
    integral = all(float(x).is_integer() for x in (a_a, b_a, a_b, b_b))
    if integral and a_b <= EXACT_TERMS_LIMIT:
        total = 0.0
        for i in range(int(a_b)):
            total += math.exp(
                _log_beta(a_a + i, b_a + b_b)
                - math.log(b_b + i)
                - _log_beta(1 + i, b_b)
                - _log_beta(a_a, b_a)
            )
        return min(1.0, max(0.0, total))
    rng = np.random.default_rng(seed)
    draws_a = rng.beta(a_a, b_a, MONTE_CARLO_DRAWS)
    draws_b = rng.beta(a_b, b_b, MONTE_CARLO_DRAWS)
    return float(np.mean(draws_b > draws_a))


def thompson_choose(arms: Sequence[ArmCounts], rng: np.random.Generator, *, min_exposure: int = 0) -> str:
    """The arm to show next: an arm still under `min_exposure` first (fewest outcomes), else
    the arm with the largest draw from its posterior."""
    if not arms:
        raise GenloopError("no arms to allocate between", hint="publish from at least one model version")
    under = [arm for arm in arms if arm.outcomes < min_exposure]
    if under:
        return min(under, key=lambda arm: (arm.outcomes, arm.arm)).arm
    draws = [rng.beta(arm.alpha, arm.beta) for arm in arms]
    return arms[int(np.argmax(draws))].arm


@dataclass(frozen=True)
class Decision:
    action: Literal["promote", "retire", "continue"]
    champion: str
    challenger: str
    p_challenger_better: float
    champion_counts: tuple[float, float]
    """(successes, failures)"""
    challenger_counts: tuple[float, float]
    champion_rate: float
    """Posterior mean like-rate."""
    challenger_rate: float
    reason: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    champion: ArmCounts,
    challenger: ArmCounts,
    *,
    min_exposure: int = 100,
    promote_at: float = 0.95,
    retire_at: float = 0.05,
) -> Decision:
    if not 0.0 <= retire_at < promote_at <= 1.0:
        raise GenloopError(f"need 0 ≤ retire_at < promote_at ≤ 1 (got {retire_at}, {promote_at})")
    p = probability_better(champion, challenger)
    least = min(champion.outcomes, challenger.outcomes)
    if least < min_exposure:
        action: Literal["promote", "retire", "continue"] = "continue"
        reason = f"minimum exposure not reached ({least:g} of {min_exposure} outcomes on the thinner arm)"
    elif p >= promote_at:
        action, reason = "promote", f"P(challenger better) = {p:.3f} ≥ {promote_at}"
    elif p <= retire_at:
        action, reason = "retire", f"P(challenger better) = {p:.3f} ≤ {retire_at}"
    else:
        action, reason = "continue", f"P(challenger better) = {p:.3f}: not yet decided"
    return Decision(
        action=action,
        champion=champion.arm,
        challenger=challenger.arm,
        p_challenger_better=p,
        champion_counts=(champion.successes, champion.failures),
        challenger_counts=(challenger.successes, challenger.failures),
        champion_rate=champion.posterior_mean,
        challenger_rate=challenger.posterior_mean,
        reason=reason,
    )

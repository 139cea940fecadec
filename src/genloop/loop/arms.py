"""The champion and challenger arms of a loop round: their counts, and who fills which slot.

An arm's outcomes are looks: a like is a success, a look without one a failure, so the
posterior is on the like-rate per look (the number the loop reports)::

    p_arm ~ Beta(1 + likes, 1 + impressions − likes)

(without impression events — e.g. a server that does not take them — dislikes stand in for
failures). Slots of a round: while an arm has fewer than `min_exposure` looks, the round is
split evenly (alternating, so neither arm owns the top of the page); after that each slot
goes to the arm with the larger Thompson draw, so exposure follows the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genloop.catalog import Catalog
from genloop.feedback.analytics import FeedbackStats, StatsFilter, feedback_stats
from genloop.publish.allocation import ArmCounts, thompson_choose


@dataclass(frozen=True)
class Tally:
    """Counted feedback of one set of publications (a round's arm, or a model version overall)."""

    impressions: int = 0
    likes: int = 0
    dislikes: int = 0
    ratings: int = 0

    @property
    def like_rate(self) -> float | None:
        """Likes per look; likes per vote when no looks were recorded."""
        if self.impressions:
            return self.likes / self.impressions
        votes = self.likes + self.dislikes
        return self.likes / votes if votes else None

    def arm(self, name: str) -> ArmCounts:
        failures = max(self.impressions - self.likes, 0) if self.impressions else self.dislikes
        return ArmCounts(name, float(self.likes), float(failures))

    def as_json(self) -> dict[str, float | int | None]:
        return {
            "impressions": self.impressions,
            "likes": self.likes,
            "dislikes": self.dislikes,
            "ratings": self.ratings,
            "like_rate": self.like_rate,
        }

    @classmethod
    def of(cls, stats: Sequence[FeedbackStats]) -> Tally:
        return cls(
            sum(s.impressions for s in stats),
            sum(s.likes for s in stats),
            sum(s.dislikes for s in stats),
            sum(s.ratings for s in stats),
        )


def arm_name(round: int, role: str) -> str:
    """Publication.arm of a loop round's items: `loop-r3-challenger`."""
    return f"loop-r{round}-{role}"


def tally_by_version(catalog: Catalog, model_name: str) -> dict[str, Tally]:
    """Every version's feedback over all its publications (the bandit's evidence)."""
    rows = feedback_stats(catalog, by=("model_version",), where=StatsFilter(model_name=model_name))
    return {str(row.group["model_version"]): Tally.of([row]) for row in rows}


def tally_of_arm(catalog: Catalog, model_name: str, arm: str) -> Tally:
    rows = feedback_stats(catalog, by=("model_version",), where=StatsFilter(model_name=model_name, arm=arm))
    return Tally.of(rows)


def allocate_slots(arms: Sequence[ArmCounts], slots: int, seed: int, *, min_exposure: int) -> list[str]:
    """The arm of each of `slots` items, in publication order."""
    if len(arms) == 1:
        return [arms[0].arm] * slots
    if any(arm.outcomes < min_exposure for arm in arms):
        return [arms[i % len(arms)].arm for i in range(slots)]
    rng = np.random.default_rng(seed)
    return [thompson_choose(arms, rng) for _ in range(slots)]

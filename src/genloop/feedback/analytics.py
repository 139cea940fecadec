"""Feedback analytics: like-rate, mean rating and CTR per model version, day, condition, channel, arm.

Everything is one aggregate query (GROUP BY in the database, SQLite and PostgreSQL alike),
so the cost does not grow with a Python loop over every event::

    like_rate = likes / (likes + dislikes)          each viewer's latest reaction only
    ctr       = clicks / impressions                 (repeats within 30 min folded at write time)
    rating    = mean of each viewer's latest rating  (1..5)

Rates come with Wilson score intervals (95 %), which stay inside [0, 1] and behave for
small counts, where the normal approximation does not:
E. B. Wilson (1927), https://doi.org/10.1080/01621459.1927.10502953
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, case, func, select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication
from genloop.errors import GenloopError
from genloop.feedback.sql import condition_key, current_events, utc_day

Z_95 = 1.959963984540054
_ID_CHUNK = 500  # bound parameters per IN (...) query; far below SQLite's and PostgreSQL's limits

GROUPINGS: dict[str, SQLColumnExpression[Any]] = {
    "model_version": ModelVersion.id,
    "day": utc_day(FeedbackEvent.created_at),
    "condition": condition_key(ContentItem.condition),
    "channel": Publication.channel,
    "arm": Publication.arm,
}
"""What `feedback_stats(by=...)` can group on; several at once give e.g. per model version per day."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of successes/trials; None without trials. 8 of 10 → (0.490, 0.943)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - margin), min(1.0, centre + margin))


@dataclass(frozen=True)
class FeedbackStats:
    """The counted feedback of one group (`group` maps each grouping to its value)."""

    group: dict[str, str | None]
    publications: int = 0
    impressions: int = 0
    clicks: int = 0
    likes: int = 0
    dislikes: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    rating_square_sum: float = 0.0
    edits: int = 0
    comments: int = 0
    flags: int = 0

    @property
    def votes(self) -> int:
        return self.likes + self.dislikes

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.votes if self.votes else None

    @property
    def like_rate_interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.likes, self.votes)

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def ctr_interval(self) -> tuple[float, float] | None:
        return wilson_interval(min(self.clicks, self.impressions), self.impressions)

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None

    @property
    def rating_interval(self) -> tuple[float, float] | None:
        """Normal-approximation 95 % interval of the mean rating (needs two ratings)."""
        if self.ratings < 2 or self.mean_rating is None:
            return None
        n, mean = self.ratings, self.mean_rating
        variance = max(0.0, (self.rating_square_sum - n * mean * mean) / (n - 1))
        margin = Z_95 * math.sqrt(variance / n)
        return (max(1.0, mean - margin), min(5.0, mean + margin))


def _count(kind: str) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((FeedbackEvent.kind == kind, 1), else_=0)), 0)


def _rating_sum(power: int) -> ColumnElement[float]:
    value = FeedbackEvent.value if power == 1 else FeedbackEvent.value * FeedbackEvent.value
    return func.coalesce(func.sum(case((FeedbackEvent.kind == "rating", value), else_=0.0)), 0.0)


@dataclass(frozen=True)
class StatsFilter:
    """Optional filters; every value is a bound parameter, never spliced into SQL."""

    model_version_id: str | None = None
    model_name: str | None = None
    channel: str | None = None
    arm: str | None = None
    condition: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        wanted: list[ColumnElement[bool]] = []
        if self.model_version_id is not None:
            wanted.append(ModelVersion.id == self.model_version_id)
        if self.model_name is not None:
            wanted.append(ModelVersion.name == self.model_name)
        if self.channel is not None:
            wanted.append(Publication.channel == self.channel)
        if self.arm is not None:
            wanted.append(Publication.arm == self.arm)
        if self.condition is not None:
            wanted.append(condition_key(ContentItem.condition) == self.condition)
        if self.since is not None:
            wanted.append(FeedbackEvent.created_at >= _utc(self.since))
        if self.until is not None:
            wanted.append(FeedbackEvent.created_at < _utc(self.until))
        return wanted


def _utc(moment: datetime) -> datetime:
    """Naive means UTC; SQLite compares stored UTC text, so every bound moment is made UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def feedback_stats(
    catalog: Catalog, *, by: Sequence[str] = ("model_version",), where: StatsFilter | None = None
) -> list[FeedbackStats]:
    """Counted feedback per group of `by` (names from `GROUPINGS`), ordered by the group values."""
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown or not by:
        raise GenloopError(
            f"cannot group feedback by {', '.join(unknown) or 'nothing'}",
            hint=f"group by one or more of: {', '.join(GROUPINGS)}",
        )
    keys = [GROUPINGS[name] for name in dict.fromkeys(by)]
    query = (
        select(
            *keys,
            func.count(func.distinct(FeedbackEvent.publication_id)),
            *(_count(kind) for kind in ("impression", "click", "like", "dislike", "rating")),
            _rating_sum(1),
            _rating_sum(2),
            *(_count(kind) for kind in ("edit", "comment", "flag")),
        )
        .select_from(FeedbackEvent)
        .join(Publication, Publication.id == FeedbackEvent.publication_id)
        .join(ContentItem, ContentItem.id == Publication.content_item_id)
        .join(ModelVersion, ModelVersion.id == ContentItem.model_version_id)
        .where(current_events(), *(where or StatsFilter()).clauses())
        .group_by(*keys)
        .order_by(*keys)
    )
    names = list(dict.fromkeys(by))
    with catalog.session() as session:
        rows = session.execute(query).all()
    stats = []
    for row in rows:
        group = {
            name: (None if value is None else str(value)) for name, value in zip(names, row, strict=False)
        }
        numbers = row[len(names) :]
        stats.append(
            FeedbackStats(
                group=group,
                publications=int(numbers[0]),
                impressions=int(numbers[1]),
                clicks=int(numbers[2]),
                likes=int(numbers[3]),
                dislikes=int(numbers[4]),
                ratings=int(numbers[5]),
                rating_sum=float(numbers[6]),
                rating_square_sum=float(numbers[7]),
                edits=int(numbers[8]),
                comments=int(numbers[9]),
                flags=int(numbers[10]),
            )
        )
    return stats


# -- the skeleton's summaries (gallery counts, /models page, report) -----------------------------


@dataclass(frozen=True)
class ModelLikeRate:
    model_version_id: str
    name: str
    version: int
    publications: int
    likes: int
    dislikes: int

    @property
    def votes(self) -> int:
        return self.likes + self.dislikes

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.votes if self.votes else None

    @property
    def like_rate_interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.likes, self.votes)


def like_rate_by_model_version(catalog: Catalog) -> list[ModelLikeRate]:
    """Every model version (voted on or not) with its published items and votes, by name then version."""
    query = (
        select(
            ModelVersion.id,
            ModelVersion.name,
            ModelVersion.version,
            func.count(func.distinct(Publication.id)),
            _count("like"),
            _count("dislike"),
        )
        .select_from(ModelVersion)
        .outerjoin(ContentItem, ContentItem.model_version_id == ModelVersion.id)
        .outerjoin(Publication, Publication.content_item_id == ContentItem.id)
        .outerjoin(
            FeedbackEvent,
            and_(
                FeedbackEvent.publication_id == Publication.id,
                FeedbackEvent.kind.in_(("like", "dislike")),
                current_events(),
            ),
        )
        .group_by(ModelVersion.id, ModelVersion.name, ModelVersion.version)
        .order_by(ModelVersion.name, ModelVersion.version)
    )
    with catalog.session() as session:
        rows = session.execute(query).all()
    return [
        ModelLikeRate(
            model_version_id=row[0],
            name=row[1],
            version=row[2],
            publications=int(row[3]),
            likes=int(row[4]),
            dislikes=int(row[5]),
        )
        for row in rows
    ]


def counts_for_publications(catalog: Catalog, ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """`{publication_id: (likes, dislikes)}` for each id asked for (zeros when none), latest per viewer."""
    wanted = list(dict.fromkeys(ids))
    counts = dict.fromkeys(wanted, (0, 0))
    with catalog.session() as session:
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            query = (
                select(FeedbackEvent.publication_id, _count("like"), _count("dislike"))
                .where(FeedbackEvent.publication_id.in_(chunk), current_events(chunk))
                .group_by(FeedbackEvent.publication_id)
            )
            for publication_id, like_count, dislike_count in session.execute(query):
                counts[publication_id] = (int(like_count), int(dislike_count))
    return counts

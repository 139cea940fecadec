"""Feedback analytics as JSON (role viewer): like-rate, mean rating and CTR with 95 % intervals.

    GET /api/v1/analytics/like-rate                  per model version (the skeleton's summary)
    GET /api/v1/analytics/feedback?by=model_version&by=day
                                                     per any of model_version, day, condition,
                                                     channel, arm; filtered by the same names

Every filter is a bound SQL parameter; an unknown `by` is a 422.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from genloop.feedback.analytics import (
    FeedbackStats,
    StatsFilter,
    feedback_stats,
    like_rate_by_model_version,
)
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Grouping = Literal["model_version", "day", "condition", "channel", "arm"]
Interval = tuple[float, float] | None


class ModelLikeRatePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model_version_id: str
    name: str
    version: int
    publications: int
    likes: int
    dislikes: int
    votes: int
    like_rate: float | None = Field(description="likes / (likes + dislikes); null while nobody has voted")
    like_rate_interval: Interval = Field(description="Wilson 95 % interval of the like-rate")


@router.get(
    "/like-rate",
    response_model=list[ModelLikeRatePublic],
    operation_id="get_like_rate",
    summary="Like-rate per model version, with publication and vote counts",
    **requires("viewer"),
)
def get_like_rate(catalog: CatalogDep) -> list[ModelLikeRatePublic]:
    return [ModelLikeRatePublic.model_validate(row) for row in like_rate_by_model_version(catalog)]


class FeedbackStatsPublic(BaseModel):
    group: dict[str, str | None] = Field(description="The value of each grouping (arm null when none)")
    publications: int
    impressions: int
    clicks: int
    ctr: float | None = Field(description="clicks / impressions")
    ctr_interval: Interval
    likes: int
    dislikes: int
    votes: int
    like_rate: float | None = Field(description="likes / (likes + dislikes), each viewer's latest reaction")
    like_rate_interval: Interval = Field(description="Wilson 95 % interval")
    ratings: int
    mean_rating: float | None
    rating_interval: Interval = Field(description="Normal-approximation 95 % interval of the mean")
    edits: int
    comments: int
    flags: int


class FeedbackStatsPage(BaseModel):
    by: list[str]
    groups: list[FeedbackStatsPublic]


def stats_public(row: FeedbackStats) -> FeedbackStatsPublic:
    return FeedbackStatsPublic(
        group=row.group,
        publications=row.publications,
        impressions=row.impressions,
        clicks=row.clicks,
        ctr=row.ctr,
        ctr_interval=row.ctr_interval,
        likes=row.likes,
        dislikes=row.dislikes,
        votes=row.votes,
        like_rate=row.like_rate,
        like_rate_interval=row.like_rate_interval,
        ratings=row.ratings,
        mean_rating=row.mean_rating,
        rating_interval=row.rating_interval,
        edits=row.edits,
        comments=row.comments,
        flags=row.flags,
    )


FilterText = Annotated[str | None, Query(min_length=1, max_length=160)]


@router.get(
    "/feedback",
    response_model=FeedbackStatsPage,
    operation_id="get_feedback_stats",
    summary="Like-rate, rating and CTR per model version / day / condition / channel / A/B arm",
    **requires("viewer"),
)
def get_feedback_stats(
    catalog: CatalogDep,
    by: Annotated[list[Grouping], Query(max_length=5)] = ["model_version"],  # noqa: B006 (FastAPI default)
    model_version_id: FilterText = None,
    model_name: FilterText = None,
    channel: FilterText = None,
    arm: FilterText = None,
    condition: FilterText = None,
    since: Annotated[datetime | None, Query(description="UTC when no offset is given")] = None,
    until: Annotated[datetime | None, Query(description="exclusive")] = None,
) -> FeedbackStatsPage:
    where = StatsFilter(
        model_version_id=model_version_id,
        model_name=model_name,
        channel=channel,
        arm=arm,
        condition=condition,
        since=since,
        until=until,
    )
    groups: list[str] = list(dict.fromkeys(by))
    return FeedbackStatsPage(
        by=groups, groups=[stats_public(r) for r in feedback_stats(catalog, by=groups, where=where)]
    )

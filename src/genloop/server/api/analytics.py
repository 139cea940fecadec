"""`GET /api/v1/analytics/like-rate`: likes / (likes + dislikes) per model version."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from genloop.feedback.analytics import like_rate_by_model_version
from genloop.server.deps import CatalogDep

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


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


@router.get(
    "/like-rate",
    response_model=list[ModelLikeRatePublic],
    operation_id="get_like_rate",
    summary="Like-rate per model version, with publication and vote counts",
)
def get_like_rate(catalog: CatalogDep) -> list[ModelLikeRatePublic]:
    return [ModelLikeRatePublic.model_validate(row) for row in like_rate_by_model_version(catalog)]

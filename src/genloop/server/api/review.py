"""The review queue (reviewer): generated items a person must approve before they can be published.

    GET  /api/v1/review                    items waiting (status review), oldest first, with verdicts
    POST /api/v1/review/{id}/approve       {note?}
    POST /api/v1/review/{id}/reject        {reason}

The moves are `genloop.generate.review`'s (the same rules as `genloop review`); every
decision is appended to the item's review log with the API key's name as the actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from genloop.feedback.events import as_utc
from genloop.generate.review import STATUSES, ReviewItem, approve, list_items, reject
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["review"])

CONTENT_ID = Annotated[str, Path(min_length=4, max_length=64, pattern=r"^[0-9A-Za-z]+$")]


class ReviewItemPublic(BaseModel):
    id: str
    status: str
    modality: str
    model_version_id: str
    condition: dict[str, Any]
    channel: str
    verdicts: list[dict[str, Any]]
    """Every safety check's verdict: check, passed, score, reason."""
    failed_checks: list[dict[str, Any]]
    review_log: list[dict[str, Any]]
    """Each decision so far: from, to, actor, note, at."""
    created_at: datetime
    file_url: str


class ReviewPage(BaseModel):
    items: list[ReviewItemPublic]
    status: str


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2_000)


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2_000, description="Why this must not be published.")


def _public(request: Request, item: ReviewItem) -> ReviewItemPublic:
    return ReviewItemPublic(
        id=item.id,
        status=item.status,
        modality=item.modality,
        model_version_id=item.model_version_id,
        condition=item.condition,
        channel=item.channel,
        verdicts=item.verdicts,
        failed_checks=item.failed_checks,
        review_log=item.review_log,
        created_at=as_utc(item.created_at),
        file_url=str(request.app.url_path_for("get_content_file", content_id=item.id)),
    )


def _actor(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"api:{principal.name}"[:128]


@router.get(
    "/review",
    response_model=ReviewPage,
    operation_id="list_review_items",
    summary="Items waiting for review (or any status), oldest first, with their safety verdicts",
    **requires("reviewer"),
)
def list_review_route(
    request: Request,
    catalog: CatalogDep,
    status: Annotated[str, Query(max_length=16, json_schema_extra={"enum": [*STATUSES, "any"]})] = "review",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReviewPage:
    items = list_items(catalog, None if status == "any" else status, limit=limit)
    return ReviewPage(items=[_public(request, item) for item in items], status=status)


@router.post(
    "/review/{content_id}/approve",
    response_model=ReviewItemPublic,
    operation_id="approve_review_item",
    summary="Approve an item (review or rejected → approved): it may be published",
    responses=ERROR_RESPONSES,
    **requires("reviewer"),
)
def approve_route(
    request: Request, catalog: CatalogDep, content_id: CONTENT_ID, body: ApproveBody | None = None
) -> ReviewItemPublic:
    note = body.note if body is not None else None
    [item] = approve(catalog, [content_id], note=note, actor=_actor(request))
    return _public(request, item)


@router.post(
    "/review/{content_id}/reject",
    response_model=ReviewItemPublic,
    operation_id="reject_review_item",
    summary="Reject an item with a reason: it is never published",
    responses=ERROR_RESPONSES,
    **requires("reviewer"),
)
def reject_route(
    request: Request, catalog: CatalogDep, content_id: CONTENT_ID, body: RejectBody
) -> ReviewItemPublic:
    [item] = reject(catalog, [content_id], reason=body.reason, actor=_actor(request))
    return _public(request, item)

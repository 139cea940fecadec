"""Publishing and webhook deliveries over HTTP.

    POST /api/v1/publications                          editor   publish one item on a channel
    GET  /api/v1/webhook-deliveries                    viewer   the delivery queue, dead letters
    POST /api/v1/webhook-deliveries/{id}/replay        editor   queue a delivery again

(`GET /api/v1/publications`, the public list, lives in `content.py`.) Publishing writes a
file and maybe re-signs a C2PA manifest, so the routes are plain `def`: FastAPI runs them
in its thread pool, never on the event loop. Webhooks are only queued here; `genloop
publish deliver` or a job worker sends them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from genloop.catalog.models import Publication
from genloop.errors import GenloopError
from genloop.publish import publish_content
from genloop.publish.channels.registry import ARM_NAME, CHANNEL_NAME, CONTENT_ID
from genloop.publish.deliveries import DeliveryView, get_delivery, list_deliveries, replay
from genloop.publish.publication import publication_id_for
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["publications"])

DELIVERY_ID = r"^[A-Za-z0-9_-]{1,64}$"
WRITE_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorBody, "description": "The item is not publishable, or the channel is misconfigured"},
}


class PublicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_item_id: str = Field(pattern=f"^{CONTENT_ID.pattern}$", description="The item to publish.")
    channel: str = Field(
        default="gallery", pattern=f"^{CHANNEL_NAME.pattern}$", description="A [channels.NAME] section."
    )
    arm: str | None = Field(default=None, pattern=f"^{ARM_NAME.pattern}$", description="A/B arm, e.g. A.")


class PublicationCreated(BaseModel):
    id: str
    content_item_id: str
    channel: str
    arm: str | None
    published_at: datetime
    path: str | None
    """The published copy (propagator fields filled), relative to the workspace."""
    created: bool
    """False when the item was already on this channel: the existing publication is returned."""


class DeliveryPublic(BaseModel):
    id: str
    channel: str
    publication_id: str | None
    url: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    total: int
    limit: int
    offset: int


def _public(view: DeliveryView) -> DeliveryPublic:
    return DeliveryPublic.model_validate(view, from_attributes=True)


@router.post(
    "/publications",
    response_model=PublicationCreated,
    status_code=status.HTTP_201_CREATED,
    operation_id="create_publication",
    summary="Publish a ready or approved item on a channel (idempotent per item and channel)",
    responses={
        200: {"model": PublicationCreated, "description": "Already published there"},
        **WRITE_RESPONSES,
    },
    **requires("editor"),
)
def create_publication(
    body: PublicationCreate, workspace: WorkspaceDep, catalog: CatalogDep, response: Response
) -> PublicationCreated:
    publication_id = publication_id_for(body.content_item_id, body.channel)
    with catalog.session() as session:
        existed = session.get(Publication, publication_id) is not None
    outcome = publish_content(
        catalog,
        [body.content_item_id],
        body.channel,
        workspace=workspace,
        config=workspace.config,
        arm=body.arm,
    )
    if outcome.held:
        state = outcome.held[body.content_item_id]
        raise GenloopError(
            f"content item {body.content_item_id} is {state}: it cannot be published",
            hint=f"a reviewer must approve it first (POST /api/v1/review/... or genloop review approve "
            f"{body.content_item_id})",
        )
    with catalog.session() as session:
        publication = session.get(Publication, outcome.publications[0])
        assert publication is not None  # just written
        session.expunge(publication)
    if existed:
        response.status_code = status.HTTP_200_OK
    return PublicationCreated(
        id=publication.id,
        content_item_id=publication.content_item_id,
        channel=publication.channel,
        arm=publication.arm,
        published_at=publication.published_at,
        path=publication.path,
        created=not existed,
    )


@router.get(
    "/webhook-deliveries",
    response_model=DeliveryPage,
    operation_id="list_webhook_deliveries",
    summary="Webhook deliveries, newest first: pending, delivered, dead (the dead-letter list)",
    **requires("viewer"),
)
def list_webhook_deliveries(
    catalog: CatalogDep,
    status_filter: Annotated[
        Literal["pending", "delivered", "dead"] | None, Query(alias="status", description="Only this status.")
    ] = None,
    channel: Annotated[str | None, Query(pattern=f"^{CHANNEL_NAME.pattern}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DeliveryPage:
    views, total = list_deliveries(catalog, status=status_filter, channel=channel, limit=limit, offset=offset)
    return DeliveryPage(items=[_public(v) for v in views], total=total, limit=limit, offset=offset)


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    response_model=DeliveryPublic,
    operation_id="replay_webhook_delivery",
    summary="Queue a delivery again with a fresh attempt budget (same id: receivers de-duplicate)",
    responses=ERROR_RESPONSES,
    **requires("editor"),
)
def replay_webhook_delivery(
    catalog: CatalogDep, delivery_id: Annotated[str, Path(pattern=DELIVERY_ID)]
) -> DeliveryPublic:
    replay(catalog, [delivery_id])
    return _public(get_delivery(catalog, delivery_id))

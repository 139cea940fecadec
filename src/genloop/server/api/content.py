"""Published items and content items: `GET /api/v1/publications`, `/content/{id}`, `/content/{id}/file`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from genloop.server.auth import sees_unpublished
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES
from genloop.server.queries import (
    PublishedItem,
    content_file,
    get_content,
    list_publications,
    require_visible,
)

PrivilegedDep = Annotated[bool, Depends(sees_unpublished)]

router = APIRouter(prefix="/api/v1", tags=["content"])

AI_GENERATED_NOTE = "AI生成 / AI-generated"


class PublicationPublic(BaseModel):
    publication_id: str
    channel: str
    arm: str | None
    published_at: datetime
    content_id: str
    modality: str
    label: str | None
    model_version_id: str
    model_name: str
    model_version: int
    image_url: str
    ai_generated_note: str = AI_GENERATED_NOTE
    likes: int
    dislikes: int


class PublicationPage(BaseModel):
    items: list[PublicationPublic]
    limit: int
    offset: int
    has_more: bool


class ContentPublic(BaseModel):
    id: str
    modality: str
    label: str | None
    condition: dict[str, Any]
    seed: int
    params: dict[str, Any]
    labels: dict[str, Any]
    """The AI-generated labels written into the file (GB 45438 `AIGC` entry, ...)."""
    created_at: datetime
    model_version_id: str
    model_name: str
    model_version: int
    image_url: str
    lineage_url: str
    ai_generated_note: str = AI_GENERATED_NOTE
    publications: list[PublicationPublic]


def file_url(request: Request, content_id: str) -> str:
    return str(request.app.url_path_for("get_content_file", content_id=content_id))


def publication_public(request: Request, item: PublishedItem) -> PublicationPublic:
    fields = {name: getattr(item, name) for name in PublishedItem.__dataclass_fields__}
    return PublicationPublic(**fields, image_url=file_url(request, item.content_id))


@router.get(
    "/publications",
    response_model=PublicationPage,
    operation_id="list_publications",
    summary="Published items, newest first, with like and dislike counts",
)
def list_publications_route(
    request: Request,
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    model_version_id: Annotated[str | None, Query(max_length=160)] = None,
) -> PublicationPage:
    items, has_more = list_publications(
        catalog, limit=limit, offset=offset, model_version_id=model_version_id
    )
    return PublicationPage(
        items=[publication_public(request, item) for item in items],
        limit=limit,
        offset=offset,
        has_more=has_more,
    )


@router.get(
    "/content/{content_id}",
    response_model=ContentPublic,
    operation_id="get_content",
    summary="One generated content item: model version, condition, labels, publications",
    responses=ERROR_RESPONSES,
)
def get_content_route(
    request: Request, catalog: CatalogDep, privileged: PrivilegedDep, content_id: str
) -> ContentPublic:
    require_visible(catalog, content_id, privileged=privileged)
    detail = get_content(catalog, content_id)
    fields = {
        name: getattr(detail, name) for name in type(detail).__dataclass_fields__ if name != "publications"
    }
    return ContentPublic(
        **fields,
        image_url=file_url(request, detail.id),
        lineage_url=str(request.app.url_path_for("get_lineage", content_id=detail.id)),
        publications=[publication_public(request, pub) for pub in detail.publications],
    )


@router.get(
    "/content/{content_id}/file",
    response_class=FileResponse,
    response_model=None,  # a file, not JSON
    operation_id="get_content_file",
    summary="The file of a catalogued content item (image/png, ...)",
    responses={200: {"content": {"image/png": {}}}, **ERROR_RESPONSES},
)
def get_content_file(
    workspace: WorkspaceDep, catalog: CatalogDep, privileged: PrivilegedDep, content_id: str
) -> FileResponse:
    require_visible(catalog, content_id, privileged=privileged)
    path, media_type = content_file(workspace, catalog, content_id)
    # Content is addressed by the hash of what produced it, so a given id never changes.
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=media_type, headers=headers)

"""Public pages: `/` and `/gallery?modality=` (images, text cards, music), `/models`, `/content/{id}`.

    /                        every published item, newest first
    /gallery?modality=text   one modality: image | text | music
    /media/{id}.{wav|mid}    a music item's rendered audio or its MIDI (the catalogued file's siblings)
    /models                  like-rate per model version
    /content/{id}            one item and its lineage

Text cards are edited in place: the corrected text goes to POST /api/v1/feedback as an
`edit` event (app.js), which is what the improve stage turns into training data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from genloop.catalog.lineage import licenses_in, lineage_for_content
from genloop.feedback.analytics import like_rate_by_model_version
from genloop.server.auth import sees_unpublished
from genloop.server.deps import CatalogDep, TemplatesDep, ViewerDep, WorkspaceDep
from genloop.server.queries import card_media, content_file, get_content, list_publications, require_visible

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

GALLERY_PAGE_SIZE = 48
MODALITIES = ("image", "text", "music")
Modality = Literal["image", "text", "music"]


def render(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    context: dict[str, Any],
    sub_response: Response | None = None,
) -> HTMLResponse:
    page: HTMLResponse = templates.TemplateResponse(request, name, context)
    if sub_response is not None:
        # A returned response skips FastAPI's merge of dependency headers: carry the
        # viewer cookie (set by ViewerDep on first visit) over by hand.
        page.headers.raw.extend(sub_response.headers.raw)
    return page


def _gallery(
    request: Request,
    response: Response,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    offset: int,
    modality: str | None,
) -> HTMLResponse:
    items, has_more = list_publications(catalog, limit=GALLERY_PAGE_SIZE, offset=offset, modality=modality)
    non_images = [item.content_id for item in items if item.modality != "image"]
    context = {
        "active": f"gallery-{modality}" if modality in ("text", "music") else "gallery",
        "items": items,
        "cards": card_media(workspace, catalog, non_images),
        "modality": modality,
        "modalities": MODALITIES,
        "offset": offset,
        "previous_offset": max(offset - GALLERY_PAGE_SIZE, 0) if offset else None,
        "next_offset": offset + GALLERY_PAGE_SIZE if has_more else None,
    }
    return render(templates, request, "gallery.html", context, response)


@router.get("/", name="gallery")
def gallery(
    request: Request,
    response: Response,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    _viewer: ViewerDep,  # gives a first-time visitor the viewer cookie before they vote
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    return _gallery(request, response, workspace, catalog, templates, offset, None)


@router.get("/gallery", name="gallery_by_modality")
def gallery_by_modality(
    request: Request,
    response: Response,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    _viewer: ViewerDep,
    modality: Modality | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    return _gallery(request, response, workspace, catalog, templates, offset, modality)


@router.get("/media/{content_id}.{extension}", name="content_media", response_class=FileResponse)
def content_media(
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    privileged: Annotated[bool, Depends(sees_unpublished)],
    content_id: str,
    extension: Literal["wav", "mid"],
) -> FileResponse:
    """A music item's rendered WAV or its MIDI, found next to the catalogued file."""
    require_visible(catalog, content_id, privileged=privileged)
    path, media_type = content_file(workspace, catalog, content_id, f".{extension}")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=media_type, headers=headers)


@router.get("/models", name="models")
def models(request: Request, catalog: CatalogDep, templates: TemplatesDep) -> HTMLResponse:
    rates = like_rate_by_model_version(catalog)
    context = {
        "active": "models",
        "rates": rates,
        "total_votes": sum(rate.votes for rate in rates),
        "total_publications": sum(rate.publications for rate in rates),
    }
    return render(templates, request, "models.html", context)


@router.get("/content/{content_id}", name="content_page")
def content_page(
    request: Request,
    response: Response,
    workspace: WorkspaceDep,
    catalog: CatalogDep,
    templates: TemplatesDep,
    _viewer: ViewerDep,
    privileged: Annotated[bool, Depends(sees_unpublished)],
    content_id: str,
) -> HTMLResponse:
    require_visible(catalog, content_id, privileged=privileged)
    item = get_content(catalog, content_id)
    lineage = lineage_for_content(catalog, item.id)
    context = {
        "active": "gallery",
        "item": item,
        "media": card_media(workspace, catalog, [item.id]).get(item.id),
        "lineage": lineage,
        "licenses": licenses_in(lineage),
        "model_chain": _model_chain(lineage.get("model_version")),
    }
    return render(templates, request, "content.html", context, response)


def _model_chain(model: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The model version, then its parent, grandparent, ... (a fine-tune points at its base)."""
    chain = []
    while model:
        chain.append(model)
        model = model.get("parent")
    return chain

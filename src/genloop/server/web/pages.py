"""Console pages: `/` gallery, `/models` like-rate per model version, `/content/{id}` item + lineage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from genloop.catalog.lineage import licenses_in, lineage_for_content
from genloop.feedback.analytics import like_rate_by_model_version
from genloop.server.deps import CatalogDep, TemplatesDep, ViewerDep
from genloop.server.queries import get_content, list_publications

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

GALLERY_PAGE_SIZE = 48


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


@router.get("/", name="gallery")
def gallery(
    request: Request,
    response: Response,
    catalog: CatalogDep,
    templates: TemplatesDep,
    _viewer: ViewerDep,  # gives a first-time visitor the viewer cookie before they vote
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    items, has_more = list_publications(catalog, limit=GALLERY_PAGE_SIZE, offset=offset)
    context = {
        "active": "gallery",
        "items": items,
        "offset": offset,
        "previous_offset": max(offset - GALLERY_PAGE_SIZE, 0) if offset else None,
        "next_offset": offset + GALLERY_PAGE_SIZE if has_more else None,
    }
    return render(templates, request, "gallery.html", context, response)


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
    catalog: CatalogDep,
    templates: TemplatesDep,
    _viewer: ViewerDep,
    content_id: str,
) -> HTMLResponse:
    item = get_content(catalog, content_id)
    lineage = lineage_for_content(catalog, item.id)
    context = {
        "active": "gallery",
        "item": item,
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

"""The ad-copy console page: products with their stored lines, constraint status, rank; publish with an arm.

    GET  /console/adcopy            every product with candidates: its lines (newest generation,
                                    by rank), ✓/✗ constraints, arms and reactions          viewer
    POST /console/adcopy/publish    form: channel, and per chosen line `arm_<content id>` = A/B/…   editor

A line is chosen by giving it an arm (empty: not published). The form carries the session's
CSRF token and posts to a route guarded by `requires("editor")`, which checks it; the work is
`apps.adcopy.shelf.publish_candidates` (the same as POST /api/v1/adcopy/publications), so
every choice is checked before any is published. A refused choice re-renders the page with
the error.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from genloop.apps.adcopy.shelf import list_candidates, list_products, publish_candidates
from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, TemplatesDep, WorkspaceDep
from genloop.server.errors import status_for
from genloop.server.web.console import VisitorDep, acting, back_to, page, signed_in

router = APIRouter(include_in_schema=False)

TEMPLATE = "console/adcopy.html"
PER_PRODUCT = 20
MAX_PRODUCTS = 100
ARM_FIELD = "arm_"
MAX_FORM_FIELDS = 500


def _context(catalog: Catalog) -> dict[str, object]:
    counts = list_products(catalog)
    products = [
        {
            "id": product_id,
            "count": count,
            "candidates": list_candidates(catalog, product_id, limit=PER_PRODUCT),
        }
        for product_id, count in sorted(counts.items())[:MAX_PRODUCTS]
    ]
    return {"active": "adcopy", "products": products}


@router.get("/console/adcopy", name="console_adcopy", response_model=None)
def adcopy_page(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    principal = signed_in(request, visitor, "viewer")
    if isinstance(principal, Response):
        return principal
    context = {**_context(catalog), "done": request.query_params.get("done")}
    return page(templates, request, principal, TEMPLATE, context)


@router.post(
    "/console/adcopy/publish", name="console_adcopy_publish", response_model=None, **requires("editor")
)
async def publish(
    request: Request, workspace: WorkspaceDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    channel = str(form.get("channel") or "gallery").strip()
    choices = [
        (str(key)[len(ARM_FIELD) :], str(value).strip())
        for key, value in form.multi_items()
        if str(key).startswith(ARM_FIELD) and str(value).strip()
    ]
    try:
        published = await run_in_threadpool(publish_candidates, workspace, catalog, choices, channel=channel)
    except GenloopError as error:
        context = {**_context(catalog), "error": error}
        return page(templates, request, acting(request), TEMPLATE, context, status_for(error))
    return back_to(f"/console/adcopy?done={quote(f'published {len(published)} on {channel}')}")

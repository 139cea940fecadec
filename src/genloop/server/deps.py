"""What routes depend on, as `Annotated` aliases: the workspace, its catalog, the viewer.

The viewer is pseudonymous: a random id in the `genloop_viewer` cookie (HttpOnly,
SameSite=Strict), created on the first request that needs it. It identifies a
browser, never a person, and carries no other data.

Every dependency here is `async def`: FastAPI runs a plain `def` dependency in the thread
pool, a hop per dependency per request, which on a busy 2-core machine cost more than many
routes' own SQL (a py-spy profile of the served text route had the hand-offs at 18 % of the
process's busy samples). None of them does I/O, so they run on the event loop.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.templating import Jinja2Templates

from genloop.catalog import Catalog
from genloop.workspace import Workspace

VIEWER_COOKIE = "genloop_viewer"
VIEWER_COOKIE_MAX_AGE = 365 * 24 * 3600
_VIEWER_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


async def get_workspace(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


async def get_catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


async def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


async def get_viewer_id(request: Request, response: Response) -> str:
    """The viewer id from the cookie; a new random one (and the cookie) when missing or malformed."""
    viewer_id, is_new = viewer_of(request)
    if is_new:
        set_viewer_cookie(response, viewer_id, request)
    return viewer_id


def viewer_of(request: Request) -> tuple[str, bool]:
    """(viewer id, whether it is new): the cookie's id, or a new random one when it is missing or
    malformed (then the response must set it, `set_viewer_cookie`)."""
    current = request.cookies.get(VIEWER_COOKIE)
    if current and _VIEWER_ID.fullmatch(current):
        return current, False
    return secrets.token_urlsafe(18), True  # 24 characters, 144 random bits


def set_viewer_cookie(response: Response, viewer_id: str, request: Request) -> None:
    response.set_cookie(
        VIEWER_COOKIE,
        viewer_id,
        max_age=VIEWER_COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
ViewerDep = Annotated[str, Depends(get_viewer_id)]

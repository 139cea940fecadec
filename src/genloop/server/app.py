"""The web console and JSON API of one workspace: `create_app` only assembles the parts.

    /                     gallery of published items, like / dislike buttons
    /models               like-rate per model version
    /content/{id}         one item and its lineage
    /api/v1/...           the same as JSON (see /docs, /openapi.json)
    /healthz              liveness + catalog check
    /static/...           CSS and JavaScript, all served from here (no CDN)

The app holds no state of its own beyond the catalog handle, so several workers
can serve one PostgreSQL catalog.
"""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from genloop import __version__
from genloop.catalog import open_catalog
from genloop.server import metrics
from genloop.server.api import (
    adcopy,
    analytics,
    content,
    datasets,
    exports,
    feedback,
    feeds,
    generations,
    health,
    jobs,
    keys,
    lineage,
    models,
    publications,
    review,
    runs,
    support,
    textgen,
)
from genloop.server.api import annotations as annotations_api
from genloop.server.errors import install_error_handlers
from genloop.server.hot_routes import HotRoutes
from genloop.server.logs import install_logging
from genloop.server.middleware import SecurityHeadersMiddleware
from genloop.server.web import adcopy_console, console, docs, login, pages, support_console
from genloop.server.web.filters import register_filters
from genloop.workspace import Workspace

WEB_DIR = Path(__file__).parent / "web"
MAX_BODY_BYTES = 16 * 1024
"""No route takes more than a few hundred bytes: the skeleton has no uploads."""


def create_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=WEB_DIR / "templates")
    register_filters(templates.env)
    templates.env.globals["genloop_version"] = __version__
    return templates


def freeze_startup_heap() -> None:
    """Collect once, then exempt every object alive now from the cyclic collector (`gc.freeze`).

    The server imports torch, SQLAlchemy, FastAPI and pydantic: ≈ 317,000 objects that live
    as long as the process. CPython's oldest-generation collection walks all of them, and
    under load it ran every few seconds for ≈ 150 ms with the GIL held, stalling every request
    in flight: in benchmarks/feedback_ingestion.py (PostgreSQL, batches of 10, 16 clients)
    that stall was the p99 (245–276 ms; 110–115 ms once frozen). After the freeze a full
    collection takes ≈ 2 ms. Only for long-running servers: a frozen object is never freed,
    so a process that builds many apps (tests) must not call it.
    """
    gc.collect()
    gc.freeze()


def create_app(workspace: Workspace, *, long_running: bool = False, hot_routes: bool = True) -> FastAPI:
    """The app of `workspace`; `long_running` (genloop serve, uvicorn factories): also freeze
    the start-up heap (`freeze_startup_heap`) once the app is built. `hot_routes=False`: the
    gallery's feedback POST goes through the app's layers like every route (server/hot_routes.py;
    for side-by-side tests and measurements)."""
    app = FastAPI(
        title="genloop",
        version=__version__,
        summary="Generated content, its publications, feedback and lineage.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; /docs is a local page instead
        redoc_url=None,
        openapi_url="/openapi.json",
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.workspace = workspace
    app.state.catalog = open_catalog(workspace.database_url)
    app.state.templates = create_templates()
    if hot_routes:  # innermost of ours: the request log and the security headers wrap it too
        app.add_middleware(HotRoutes, routes=feedback.HOT_ROUTES, exception_handlers=app.exception_handlers)
    app.add_middleware(SecurityHeadersMiddleware)
    install_logging(app)
    install_error_handlers(app)
    # Starlette tries routes in order, and FastAPI's check of one route costs ≈ 3 µs: a request
    # to the 13th router walked ≈ 35 routes, ≈ 20 % of a feedback POST's time on the event loop.
    # The routes that viewers and integrations call under load come first (no path overlaps
    # between routers, so the order changes no answer; tests/server/test_app.py checks that).
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    routers = (
        # JSON API, one router per domain (/api/v1/...): the hot ones first
        health,
        feedback,
        publications,
        textgen,
        keys,
        datasets,
        runs,
        models,
        jobs,
        generations,
        review,
        annotations_api,
        content,
        feeds,
        exports,
        analytics,
        lineage,
        support,
        adcopy,
        metrics,
        # the web console
        login,
        console,
        support_console,
        adcopy_console,
        pages,
        docs,
    )
    for module in routers:
        app.include_router(module.router)
    if long_running:
        freeze_startup_heap()
    return app

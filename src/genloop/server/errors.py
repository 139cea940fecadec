"""GenloopError → HTTP: a JSON body `{"detail", "hint"}` for the API, an HTML page for the console.

NotFoundError → 404, a reused idempotency key → 409, a viewer over the feedback rate
limit → 429 with Retry-After, any other GenloopError (bad input the user can fix) → 400.
Anything else is a bug and stays a 500.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.events import IdempotencyConflictError
from genloop.feedback.ratelimit import RateLimitedError


class ErrorBody(BaseModel):
    detail: str
    hint: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Not in the catalog"},
}


def status_for(exc: GenloopError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, IdempotencyConflictError):
        return 409
    if isinstance(exc, RateLimitedError):
        return 429
    return 400


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/healthz", "/openapi.json", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, title: str, message: str, hint: str | None) -> Response:
    templates = request.app.state.templates
    context = {"status": status, "title": title, "message": message, "hint": hint}
    page: Response = templates.TemplateResponse(request, "error.html", context, status_code=status)
    return page


async def genloop_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, GenloopError):  # registered for GenloopError only
        raise exc
    status = status_for(exc)
    if _wants_html(request):
        title = "Not found" if status == 404 else "Cannot do that"
        return _error_page(request, status, title, exc.message, exc.hint)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitedError) else None
    return JSONResponse(
        ErrorBody(detail=exc.message, hint=exc.hint).model_dump(), status_code=status, headers=headers
    )


async def page_http_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for HTTPException only
        raise exc
    if _wants_html(request):
        title = "Not found" if exc.status_code == 404 else "Error"
        return _error_page(request, exc.status_code, title, str(exc.detail), None)
    return await http_exception_handler(request, exc)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """422 with FastAPI's error list, encoded as ASCII JSON: the echoed `input` may hold text
    that UTF-8 cannot encode (a lone surrogate such as \\ud800), which must not become a 500."""
    if not isinstance(exc, RequestValidationError):  # registered for RequestValidationError only
        raise exc
    errors: Any = jsonable_encoder(exc.errors())
    body = json.dumps({"detail": errors}, ensure_ascii=True).encode("ascii")
    return Response(body, status_code=422, media_type="application/json")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(GenloopError, genloop_error_handler)
    app.add_exception_handler(StarletteHTTPException, page_http_error_handler)

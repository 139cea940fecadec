"""The route called on every click, dispatched without the app's per-request layers; same answers.

The gallery's feedback POST is the request a genloop service gets most. Through the app it
passes Starlette's exception middleware, FastAPI's body-limit layers (the app's and the
route's), its exit-stack middleware, the router (which tries the routes before it) and
FastAPI's request-response wrapper before the endpoint runs. In-process (16 concurrent
POSTs into the app object, SQLite, 2026-11-29) that took 0.165 ms of the event loop's CPU
per request, of which the endpoint itself (read the body, queue the event for the group
commit, answer) was 0.04 ms.

A hot route is an endpoint that takes only the `Request` and returns a `Response`: no
dependencies or parameters for FastAPI to resolve (server/bodies.py reads its body).
`HotRoutes`, an ASGI middleware inside the request log and the security headers (so those
stay the same code for every route), calls it directly for its exact method and path and
does what the skipped layers did for it:

* the route's body limit, by Starlette's middleware as the router applies it (a body over
  `max_body_size`, declared or counted while read, is a 413 "Content Too Large"): under the
  app's own limit, which FastAPI puts outside all middleware, it raises that limit to the
  route's, as the route does;
* an exception goes to the app's own handler for it (GenloopError, validation errors,
  HTTPException: found as Starlette finds them, by status code then by class); any other
  goes on to ServerErrorMiddleware's 500, as before;
* `scope["endpoint"]` and empty `path_params`, from which the access log and the metrics
  take the route's label (server/logs.py).

The route is still declared on its router as usual: the OpenAPI document, other methods
(405), a prefixed `root_path`, and apps built with `hot_routes=False` go through it.
tests/server/test_hot_routes.py sends the same requests, good and bad, through both and
compares the answers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Any]


@dataclass(frozen=True)
class HotRoute:
    method: str
    path: str
    """The full path, prefix included (no path parameters)."""
    endpoint: Endpoint
    max_body_size: int
    """Bytes; as the route's `max_body_size` on its router."""


class HotRoutes:
    """ASGI middleware: `routes` called directly for their exact method and path; all else, and
    a non-empty `root_path`, goes on to `app`. `exception_handlers` is the app's own dict
    (`FastAPI.exception_handlers`), read when an exception needs a handler."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[HotRoute], exception_handlers: Mapping[Any, ExceptionHandler]
    ) -> None:
        self.app = app
        self.exception_handlers = exception_handlers
        # Each route behind Starlette's body limit at the route's size, as its router puts it:
        # under the app's limit (FastAPI's, outside this middleware) it only sets the limit of
        # the request's byte counter, which raises a 413 from `receive` once over it.
        self.routes: dict[tuple[str, str], ASGIApp] = {
            (route.method, route.path): RequestBodyLimitMiddleware(
                functools.partial(self._call, route), max_body_size=route.max_body_size
            )
            for route in routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self.routes.get((scope["method"], scope["path"]))
            if route is not None:
                await route(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _call(self, route: HotRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, error)
            else:  # as Starlette runs a plain function handler
                response = await run_in_threadpool(handler, request, error)
        await response(scope, receive, send)

    def _handler_for(self, error: Exception) -> ExceptionHandler | None:
        """The app's handler for `error` as Starlette's ExceptionMiddleware picks it; None for
        errors left to ServerErrorMiddleware (no handler, or the catch-all 500 one)."""
        handlers = self.exception_handlers
        if isinstance(error, HTTPException) and error.status_code in handlers:
            return handlers[error.status_code]
        for kind in type(error).__mro__:
            if kind is Exception:
                return None
            if kind in handlers:
                return handlers[kind]
        return None

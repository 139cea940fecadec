"""Structured request logs and request ids: one JSON line per request on stderr.

    {"ts":"2026-11-28T22:40:01.123Z","level":"INFO","logger":"genloop.access",
     "request_id":"5f0c...","method":"POST","route":"/api/v1/keys/{key_id}",
     "status":403,"duration_ms":2.41,"principal":"a1b2c3d4"}

* every request gets an id: the caller's `X-Request-ID` when it is a short token
  (`[A-Za-z0-9._-]{1,128}`, so a log line cannot be forged through it), else a new one;
  it is sent back in `X-Request-ID` and is `request.state.request_id` for handlers;
* `route` is the route *template*, never the raw path, and the query string is never
  logged, so ids, tokens and search terms stay out of the logs; `principal` is the API
  key *id* of an authorised request (`env` for GENLOOP_ADMIN_KEY), else `anonymous`;
* the same middleware feeds the per-process request metrics of `/metrics`.

A plain ASGI middleware (not `BaseHTTPMiddleware`), so streamed and file responses pass
through untouched. uvicorn's own access log (which prints query strings) is switched off
by `genloop serve`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import pydantic_core
from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genloop.server.metrics import REQUEST_METRICS

ACCESS_LOGGER = "genloop.access"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route answered (404 scans must not add series)."""


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object; fields passed as `extra={"fields": {...}}` are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        # pydantic-core's encoder: a third of json.dumps's time for a request's line
        return pydantic_core.to_json(line, fallback=str).decode()


class LoopBatchedStreamHandler(logging.StreamHandler):
    """A stream handler that writes the lines of one event-loop turn together, in order.

    When a group of feedback events is committed (server/group_commit.py), its ≈ 16 requests
    answer in the same turn of the loop, and each wrote its access line with its own write
    and flush to stderr: ≈ 10 % of the loop's time per request. Here a line emitted on a
    thread running an event loop waits in a list until that turn ends (`call_soon`), and the
    turn's lines go out in one write. A line emitted anywhere else is written at once, after
    any that wait. `flush` (and logging's shutdown at exit) writes whatever waits.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        # emit runs under the handler's lock (Handler.handle), so `_waiting` is ours here
        self._waiting.append(line)
        if loop is None:
            self._write_waiting()
        elif len(self._waiting) == 1:  # the turn's first line: write them all when the turn ends
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._write_waiting()

    def _write_waiting(self) -> None:
        if self._waiting:
            text, self._waiting = "".join(self._waiting), []
            try:
                self.stream.write(text)
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": text}))
        super().flush()


def access_logger() -> logging.Logger:
    """`genloop.access`, writing JSON lines to stderr (a handler added once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(getattr(handler, "genloop_json", False) for handler in logger.handlers):
        handler = LoopBatchedStreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.genloop_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    if logger.level == logging.NOTSET:  # never set, or reset by someone: requests are INFO lines
        logger.setLevel(logging.INFO)
    return logger


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered (`/content/{content_id}`), never the raw path.

    `root_path` is the scope's root path before routing: a mount (`/static`) extends it.
    """
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    if route is not None:
        return str(getattr(route, "path_format", None) or getattr(route, "path", UNMATCHED_ROUTE))
    mounted = str(scope.get("root_path", ""))
    if mounted != root_path and mounted.startswith(root_path):
        return f"{mounted[len(root_path) :]}/{{path}}"
    # plain Starlette routes (/openapi.json) may not leave `route` in the scope: a route
    # that answered without path parameters has a fixed path, which is safe to use
    if scope.get("endpoint") is not None and not scope.get("path_params"):
        return str(scope.get("path", UNMATCHED_ROUTE))
    return UNMATCHED_ROUTE


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(candidate):
                return candidate
    return os.urandom(16).hex()  # as uuid4().hex (32 hex digits, 128 random bits) without the UUID object


def principal_label(scope: Scope) -> str:
    principal = scope.get("state", {}).get("principal")
    return str(getattr(principal, "key_id", None) or "anonymous")


class RequestLogMiddleware:
    """Request id in and out, one JSON access line per request, request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        root_path = str(scope.get("root_path", ""))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_template(scope, root_path)
            self._record(scope, route, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, route: str, request_id: str, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        REQUEST_METRICS.observe(method, route, status, seconds)
        fields = {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "principal": principal_label(scope),
        }
        logger = self.logger
        if logger.isEnabledFor(logging.INFO):
            # makeRecord + handle is `logger.info` without its search of the call stack for the
            # caller's file and line, which an access line does not print
            record = logger.makeRecord(
                logger.name, logging.INFO, __file__, 0, "request", (), None, extra={"fields": fields}
            )
            logger.handle(record)


def install_logging(app: FastAPI) -> None:
    """Add the request-log middleware (outermost of the app's own middleware)."""
    app.add_middleware(RequestLogMiddleware)

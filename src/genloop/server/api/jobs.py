"""Background jobs: list, inspect, follow (viewer); cancel (editor).

    GET  /api/v1/jobs                  newest first; filter by status and kind
    GET  /api/v1/jobs/{id}             status, progress 0..1, message, result or error (poll this…)
    GET  /api/v1/jobs/{id}/events      …or follow it: server-sent events until the job ends
    POST /api/v1/jobs/{id}/cancel      queued → cancelled at once; running → cancelling

The event stream reads the catalog every `EVENT_POLL_SECONDS` in the thread pool and
sleeps with `asyncio.sleep`, so a thousand followers cost the event loop nothing but
timers; it sends a `progress` event whenever status, progress or message changed, and
one `end` event (the finished job) before it closes. Any server worker can serve any
stream: the state is in the catalog, not in the process that queued the job.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from genloop.catalog import Catalog
from genloop.jobs import queue
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["jobs"])

JOB_ID = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
EVENT_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


class JobPublic(BaseModel):
    id: str
    kind: str
    status: str
    """queued | running | cancelling | done | failed | cancelled"""
    progress: float
    message: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_by: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    status_url: str
    events_url: str


class JobPage(BaseModel):
    items: list[JobPublic]
    limit: int
    offset: int
    has_more: bool


def job_urls(request: Request, job_id: str) -> dict[str, str]:
    return {
        "status_url": str(request.app.url_path_for("get_job", job_id=job_id)),
        "events_url": str(request.app.url_path_for("follow_job", job_id=job_id)),
    }


def job_public(request: Request, job: queue.JobView) -> JobPublic:
    fields: dict[str, Any] = {name: getattr(job, name) for name in queue.JobView.__dataclass_fields__}
    fields.update(job_urls(request, job.id))
    return JobPublic(**fields)


@router.get(
    "/jobs",
    response_model=JobPage,
    operation_id="list_jobs",
    summary="Background jobs, newest first",
    **requires("viewer"),
)
def list_jobs_route(
    request: Request,
    catalog: CatalogDep,
    status: Annotated[
        str | None, Query(max_length=16, json_schema_extra={"enum": list(queue.STATUSES)})
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=32, json_schema_extra={"enum": list(queue.JOB_KINDS)})
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobPage:
    jobs, has_more = queue.list_jobs(catalog, status=status, kind=kind, limit=limit, offset=offset)
    return JobPage(
        items=[job_public(request, job) for job in jobs], limit=limit, offset=offset, has_more=has_more
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    operation_id="get_job",
    name="get_job",
    summary="One job: status, progress, message, result or error",
    responses=ERROR_RESPONSES,
    **requires("viewer"),
)
def get_job_route(request: Request, catalog: CatalogDep, job_id: JOB_ID) -> JobPublic:
    return job_public(request, queue.get(catalog, job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobPublic,
    operation_id="cancel_job",
    summary="Cancel a job: a queued one at once, a running one at its next item",
    responses={**ERROR_RESPONSES, 409: {"model": ErrorBody, "description": "The job already ended"}},
    **requires("editor"),
)
def cancel_job_route(request: Request, catalog: CatalogDep, job_id: JOB_ID) -> JobPublic | JSONResponse:
    try:
        job = queue.cancel(catalog, job_id)
    except queue.JobStateError as exc:
        body = ErrorBody(detail=exc.message, hint=exc.hint)
        return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)
    return job_public(request, job)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def job_events(request: Request, catalog: Catalog, job_id: str) -> AsyncIterator[str]:
    """`progress` events while the job changes, then one `end` event; stops when the client leaves."""
    last: tuple[str, float, str | None] | None = None
    last_sent = time.monotonic()
    while True:
        job = await run_in_threadpool(queue.get, catalog, job_id)
        state = (job.status, job.progress, job.message)
        if state != last:
            last, last_sent = state, time.monotonic()
            yield _event(
                "progress",
                {"id": job.id, "status": job.status, "progress": job.progress, "message": job.message},
            )
        if job.finished:
            yield _event("end", job_public(request, job).model_dump(mode="json"))
            return
        if await request.is_disconnected():
            return
        if time.monotonic() - last_sent > KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"  # a comment line: keeps proxies from closing an idle stream
        await asyncio.sleep(EVENT_POLL_SECONDS)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    response_model=None,  # a text/event-stream, not JSON
    operation_id="follow_job",
    name="follow_job",
    summary="Server-sent events: the job's progress until it ends",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`progress` events, then one `end`"},
        **ERROR_RESPONSES,
    },
    **requires("viewer"),
)
def follow_job_route(request: Request, catalog: CatalogDep, job_id: JOB_ID) -> StreamingResponse:
    queue.get(catalog, job_id)  # 404 before the stream starts
    return StreamingResponse(
        job_events(request, catalog, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""Feedback in: one event from a viewer, a batch from an integration, a CSV from an ad platform.

    POST /api/v1/feedback          anonymous (the gallery); rate-limited per viewer (429)
    POST /api/v1/feedback/batch    editor; up to MAX_BATCH_EVENTS events, a result per event
    POST /api/v1/feedback/import   editor; multipart CSV upload mapped onto publications

CSRF defence of the anonymous endpoint: the body must be sent as
`Content-Type: application/json`. An HTML form (or a cross-site "simple" fetch) can only
send `text/plain`, form-urlencoded or multipart, or no content type at all; JSON makes a
cross-site request need a CORS preflight, which this server never grants (415 otherwise).
The viewer cookie is `SameSite=Strict`, so a cross-site request does not carry it.

Batches are per-event, not all-or-nothing: each event is stored, replayed (a retry or a
repeat, see feedback/dedup.py) or refused with its reason, independently, and the
response lists one result per event in order. A batch whose *shape* is wrong (not a
list of objects with the documented fields and types) is refused whole (422), and
nothing in it is stored. A batch is stored in one transaction (a refusal writes nothing,
so it does not spoil it), shared with the batches that wait at the same time
(server/group_commit.py; single events are grouped the same way): a database failure
half-way stores none of it, and the integration retries the whole batch with the same keys.

The answer to one event says how it changed the publication's like and dislike counts
(`likes_change`, `dislikes_change`: +1, 0 or −1, from the viewer's previous reaction
that the event's de-duplication reads anyway), not the counts themselves: recounting
each viewer's latest reaction over all of a publication's events on every click was
half the cost of the endpoint and grew with the publication. The gallery adds the
changes to the counts on the page; GET /api/v1/publications has the counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.feedback.batch import NewEvent
from genloop.feedback.events import FeedbackEventInfo
from genloop.feedback.importer import MAX_IMPORT_BYTES, TARGETS, ImportReport, import_feedback_csv
from genloop.feedback.kinds import (
    FEEDBACK_KINDS,
    MAX_TEXT_BYTES,
    RESERVED_KEY_PREFIXES,
    FeedbackValidationError,
    validate_event,
)
from genloop.server.auth import requires
from genloop.server.bodies import json_request_body, json_response, parse_json_body
from genloop.server.deps import CatalogDep, set_viewer_cookie, viewer_of
from genloop.server.errors import ERROR_RESPONSES, ErrorBody
from genloop.server.group_commit import record_batch_grouped, record_grouped
from genloop.server.hot_routes import HotRoute

router = APIRouter(prefix="/api/v1", tags=["feedback"])

MAX_FEEDBACK_BODY_BYTES = 48 * 1024
"""An 8 KiB text, even with every character JSON-escaped (\\uXXXX), fits."""
MAX_BATCH_EVENTS = 500
MAX_BATCH_BODY_BYTES = 2 * 1024 * 1024
CSV_CONTENT_TYPES = frozenset(
    {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "text/comma-separated-values"}
)
"""What browsers and curl label a .csv upload with (Windows says application/vnd.ms-excel)."""

IdempotencyKey = Annotated[
    str | None,
    Field(
        default=None,
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Send the same key when retrying; a random UUID per new event.",
    ),
]


def _no_reserved_prefix(key: str | None) -> str | None:
    if key is not None and key.startswith(RESERVED_KEY_PREFIXES):
        raise ValueError(
            f"idempotency keys starting with {' or '.join(RESERVED_KEY_PREFIXES)} are genloop's own"
        )
    return key


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publication_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: str = Field(max_length=16, json_schema_extra={"enum": list(FEEDBACK_KINDS)})
    value: float | None = Field(default=None, description="rating only: a whole number 1-5")
    text: str | None = Field(
        default=None,
        max_length=MAX_TEXT_BYTES,
        description=f"edit: the corrected text (required); comment; flag: the reason (≤ {MAX_TEXT_BYTES} B)",
    )
    idempotency_key: IdempotencyKey = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; allowed: {', '.join(FEEDBACK_KINDS)}")
        return kind

    @field_validator("idempotency_key")
    @classmethod
    def _own_key(cls, key: str | None) -> str | None:
        return _no_reserved_prefix(key)

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackCreate:
        try:
            validate_event(kind=self.kind, viewer_id="viewer", value=self.value, text=self.text)
        except FeedbackValidationError as error:
            raise ValueError(str(error)) from None
        return self


class FeedbackPublic(BaseModel):
    id: int
    publication_id: str
    kind: str
    value: float | None
    text: str | None = None
    idempotency_key: str | None
    created_at: datetime
    replayed: bool = Field(
        description="True when this repeats a stored event (a retry or a repeat): that event."
    )
    likes_change: int = Field(
        description="How this event changed the publication's likes (each viewer's latest reaction "
        "counts): +1 for a new like, -1 for a dislike replacing this viewer's like, else 0."
    )
    dislikes_change: int = Field(description="The same for dislikes.")


def require_json(request: Request) -> None:
    """Refuse bodies that are not declared JSON (CSRF, see the module docstring)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the feedback as JSON with the header Content-Type: application/json",
        )


def _count_change(event: FeedbackEventInfo, kind: str) -> int:
    """+1 when the event is a new `kind`, -1 when it replaces the viewer's `kind`, else 0."""
    if event.replayed:
        return 0
    return (event.kind == kind) - (event.supersedes == kind)


def _public(event: FeedbackEventInfo) -> FeedbackPublic:
    return FeedbackPublic(
        id=event.id,
        publication_id=event.publication_id,
        kind=event.kind,
        value=event.value,
        text=event.text,
        idempotency_key=event.idempotency_key,
        created_at=event.created_at,
        replayed=event.replayed,
        likes_change=_count_change(event, "like"),
        dislikes_change=_count_change(event, "dislike"),
    )


@router.post(
    "/feedback",
    response_model=FeedbackPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="create_feedback",
    summary=f"Record one feedback event ({', '.join(FEEDBACK_KINDS)}) on a publication",
    max_body_size=MAX_FEEDBACK_BODY_BYTES,
    openapi_extra=json_request_body(FeedbackCreate),
    responses={
        **ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "Idempotency key reused for another event"},
        413: {"description": "Body too large"},
        415: {"description": "Body is not application/json"},
        429: {"description": "This viewer sent too much feedback; see Retry-After"},
    },
)
async def create_feedback(request: Request) -> Response:
    # The gallery's route, called on every click: a hot route (HOT_ROUTES below), called
    # without the app's per-request layers; the body is read and the answer written by
    # pydantic-core directly, with no dependency tree to resolve (server/bodies.py). The event
    # is stored with the other requests' events waiting at the same time, in one transaction
    # off the loop (server/group_commit.py), and answered once committed.
    require_json(request)
    body = await parse_json_body(request, FeedbackCreate)
    viewer_id, new_viewer = viewer_of(request)
    event = NewEvent(
        publication_id=body.publication_id,
        kind=body.kind,
        viewer_id=viewer_id,
        idempotency_key=body.idempotency_key,
        value=body.value,
        text=body.text,
    )
    catalog: Catalog = request.app.state.catalog
    response = json_response(_public(await record_grouped(catalog, event)), status_code=201)
    if new_viewer:
        set_viewer_cookie(response, viewer_id, request)
    return response


HOT_ROUTES = (HotRoute("POST", f"{router.prefix}/feedback", create_feedback, MAX_FEEDBACK_BODY_BYTES),)
"""Called directly, without the app's per-request layers (server/hot_routes.py)."""


# -- batch ---------------------------------------------------------------------------------------


class BatchEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publication_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: str = Field(min_length=1, max_length=16, json_schema_extra={"enum": list(FEEDBACK_KINDS)})
    viewer_id: str = Field(
        min_length=1,
        max_length=64,
        description="The integration's pseudonymous id of the viewer (A-Z a-z 0-9 _.:-)",
    )
    value: float | None = None
    text: str | None = Field(default=None, max_length=MAX_TEXT_BYTES)
    idempotency_key: IdempotencyKey = None
    meta: dict[str, Any] | None = Field(default=None, description="Where it came from (≤ 2 KiB as JSON)")

    @field_validator("idempotency_key")
    @classmethod
    def _own_key(cls, key: str | None) -> str | None:
        return _no_reserved_prefix(key)


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[BatchEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchResult(BaseModel):
    index: int = Field(description="Position of the event in the request")
    status: Literal["stored", "replayed", "error"]
    id: int | None = None
    detail: str | None = Field(default=None, description="Why the event was refused (status error)")
    hint: str | None = None


class BatchResponse(BaseModel):
    stored: int
    replayed: int
    errors: int
    results: list[BatchResult]


@router.post(
    "/feedback/batch",
    response_model=BatchResponse,
    operation_id="create_feedback_batch",
    summary=f"Record up to {MAX_BATCH_EVENTS} feedback events; one result per event (stored/replayed/error)",
    max_body_size=MAX_BATCH_BODY_BYTES,
    responses={413: {"description": "Body too large"}},
    **requires("editor"),
)
async def create_feedback_batch(body: FeedbackBatch, catalog: CatalogDep) -> BatchResponse:
    # stored with the other batches waiting at the same time, in one transaction off the loop
    # (server/group_commit.py); a database failure stores none of this batch
    events = [
        NewEvent(
            publication_id=item.publication_id,
            kind=item.kind,
            viewer_id=item.viewer_id,
            idempotency_key=item.idempotency_key,
            value=item.value,
            text=item.text,
            meta=item.meta,
        )
        for item in body.events
    ]
    results = [
        _batch_result(index, outcome)
        for index, outcome in enumerate(await record_batch_grouped(catalog, events))
    ]
    return BatchResponse(
        stored=sum(r.status == "stored" for r in results),
        replayed=sum(r.status == "replayed" for r in results),
        errors=sum(r.status == "error" for r in results),
        results=results,
    )


def _batch_result(index: int, outcome: FeedbackEventInfo | GenloopError) -> BatchResult:
    if isinstance(outcome, GenloopError):
        return BatchResult(index=index, status="error", detail=outcome.message, hint=outcome.hint)
    return BatchResult(index=index, status="replayed" if outcome.replayed else "stored", id=outcome.id)


# -- CSV import ----------------------------------------------------------------------------------


class UnknownCreativePublic(BaseModel):
    row: int
    creative: str
    reason: str


class ImportPublic(BaseModel):
    file: str
    sha256: str = Field(
        description="First 16 hex digits of the file's SHA-256 (in every imported event's key)"
    )
    rows: int
    events: int = Field(description="Events the rows with known creative ids map to")
    stored: int
    already_stored: int = Field(description="Events an earlier import of the same file stored")
    by_kind: dict[str, int]
    unknown: list[UnknownCreativePublic] = Field(description="Rows skipped: creative id not in the catalog")
    dry_run: bool


def _import_public(report: ImportReport) -> ImportPublic:
    return ImportPublic(
        file=report.file,
        sha256=report.sha256,
        rows=report.rows,
        events=report.events,
        stored=report.stored,
        already_stored=report.already_stored,
        by_kind=report.by_kind,
        unknown=[
            UnknownCreativePublic(row=u.row, creative=u.creative, reason=u.reason) for u in report.unknown
        ],
        dry_run=report.dry_run,
    )


@router.post(
    "/feedback/import",
    response_model=ImportPublic,
    operation_id="import_feedback_csv",
    summary="Import an ad platform's CSV export (creative id → impressions, clicks, likes) as feedback",
    max_body_size=MAX_IMPORT_BYTES + 64 * 1024,
    responses={
        400: {
            "model": ErrorBody,
            "description": "Malformed CSV or mapping (row and column named); nothing stored",
        },
        413: {"description": f"Upload over {MAX_IMPORT_BYTES} bytes"},
        415: {"description": "Not a CSV upload"},
    },
    **requires("editor"),
)
async def import_feedback(
    catalog: CatalogDep,
    file: Annotated[UploadFile, File(description="The CSV (UTF-8 or GBK)")],
    mapping: Annotated[
        str,
        Form(
            max_length=1024,
            description=f"TARGET=COLUMN,... ({', '.join(TARGETS)}), e.g. creative=Creative_ID,clicks=Clicks",
        ),
    ],
    delimiter: Annotated[str, Form(min_length=1, max_length=1)] = ",",
    dry_run: Annotated[bool, Form()] = False,
) -> ImportPublic:
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type not in CSV_CONTENT_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"upload a CSV file (got {content_type or 'no content type'}); export the report as CSV",
        )
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the file is over {MAX_IMPORT_BYTES} bytes; split it into parts",
        )
    base = (file.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in base if ch.isprintable())[:200] or "upload.csv"
    report = await _run_import(
        catalog, data, name=name, mapping=mapping, delimiter=delimiter, dry_run=dry_run
    )
    return _import_public(report)


async def _run_import(catalog: CatalogDep, data: bytes, **options: Any) -> ImportReport:
    """Parse and store off the event loop (a 5 MB file is up to 200 000 rows)."""
    return await run_in_threadpool(lambda: import_feedback_csv(catalog, data, **options))

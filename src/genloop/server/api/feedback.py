"""`POST /api/v1/feedback`: one like or dislike on a publication.

CSRF defence of the skeleton (no login yet):

* the body must be sent as `Content-Type: application/json`. An HTML form (or a
  cross-site "simple" fetch) can only send `text/plain`, form-urlencoded or
  multipart, or no content type at all; JSON makes a cross-site request need a CORS
  preflight, which this server never grants. FastAPI alone would parse a body that
  has *no* content type as JSON, so the type is checked explicitly (415 otherwise);
* the viewer cookie is `SameSite=Strict`, so a cross-site request does not carry it.

The body is small by construction: three short, length-limited fields and no
extras; a body over `MAX_FEEDBACK_BODY_BYTES` is refused (413) while it is read,
before any parsing.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from genloop.feedback.analytics import counts_for_publications
from genloop.feedback.events import FEEDBACK_KINDS, record_feedback
from genloop.server.deps import CatalogDep, ViewerDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["feedback"])

MAX_FEEDBACK_BODY_BYTES = 2048


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publication_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(max_length=16, json_schema_extra={"enum": list(FEEDBACK_KINDS)})
    idempotency_key: str | None = Field(
        default=None,
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Send the same key when retrying; a random UUID per new event.",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}; allowed: {', '.join(FEEDBACK_KINDS)}")
        return kind


class FeedbackPublic(BaseModel):
    id: int
    publication_id: str
    kind: str
    value: float | None
    idempotency_key: str | None
    created_at: datetime
    replayed: bool = Field(description="True when the key was seen before: this is the stored event.")
    likes: int = Field(description="Likes of the publication, this event included.")
    dislikes: int


def require_json(request: Request) -> None:
    """Refuse bodies that are not declared JSON (CSRF, see the module docstring)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send the feedback as JSON with the header Content-Type: application/json",
        )


@router.post(
    "/feedback",
    response_model=FeedbackPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="create_feedback",
    summary=f"Record one feedback event ({', '.join(FEEDBACK_KINDS)}) on a publication",
    dependencies=[Depends(require_json)],
    max_body_size=MAX_FEEDBACK_BODY_BYTES,
    responses={
        **ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "Idempotency key reused for another event"},
        413: {"description": "Body too large"},
        415: {"description": "Body is not application/json"},
    },
)
def create_feedback(
    body: FeedbackCreate,
    catalog: CatalogDep,
    viewer_id: ViewerDep,
) -> FeedbackPublic:
    event = record_feedback(
        catalog,
        publication_id=body.publication_id,
        kind=body.kind,
        viewer_id=viewer_id,
        idempotency_key=body.idempotency_key,
    )
    likes, dislikes = counts_for_publications(catalog, [event.publication_id])[event.publication_id]
    return FeedbackPublic(
        id=event.id,
        publication_id=event.publication_id,
        kind=event.kind,
        value=event.value,
        idempotency_key=event.idempotency_key,
        created_at=event.created_at,
        replayed=event.replayed,
        likes=likes,
        dislikes=dislikes,
    )

"""Support pre-replies over HTTP: submit a customer query, work the agent queue.

    POST /api/v1/support/tickets                   {query, top_k?} → the queued pre-reply   editor
    GET  /api/v1/support/tickets?status=queued     the queue, oldest first                   reviewer
    GET  /api/v1/support/tickets/{id}              one ticket                                reviewer
    POST /api/v1/support/tickets/{id}/accept       {intent?}           → like                reviewer
    POST /api/v1/support/tickets/{id}/edit         {reply, intent?}    → edit (corrected text) reviewer
    POST /api/v1/support/tickets/{id}/reject       {reason?}           → dislike             reviewer

The work is `genloop.apps.support.queue`'s (the same as `genloop support submit / decide`).
A ticket is decided once: a second decision is 409 and stores nothing; an unknown id is 404;
a query the app cannot take (empty, too long) is 400 or 422 and stores nothing. No response
holds the raw query: tickets carry the masked query and masked PII slots.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from genloop.apps.support.app import load_app
from genloop.apps.support.queue import STATUSES, Ticket, decide, get_ticket, list_tickets, submit
from genloop.apps.support.structure import MAX_QUERY_CHARS
from genloop.server.auth import Principal, requires
from genloop.server.deps import CatalogDep, WorkspaceDep
from genloop.server.errors import ERROR_RESPONSES, ErrorBody

router = APIRouter(prefix="/api/v1", tags=["support"])

TicketId = Annotated[str, Path(min_length=1, max_length=64, description="A ticket id (32 hex characters).")]
DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorBody, "description": "The decision cannot be taken as sent"},
    409: {"model": ErrorBody, "description": "The ticket was already decided (a ticket is decided once)"},
}


class SlotPublic(BaseModel):
    type: str
    value: str
    """PII slots (EMAIL, PHONE, CN_ID, BANK_CARD, IP) show their type only: `[PHONE]`."""
    start: int
    end: int
    pii: bool


class SourcePublic(BaseModel):
    rank: int
    id: str
    score: float
    method: str
    intent: str
    question: str
    answer: str


class TicketPublic(BaseModel):
    id: str
    status: str
    """queued | accepted | edited | rejected"""
    query: str
    """The customer's query with PII masked (the raw query is never stored)."""
    language: str
    intent: str
    intent_confidence: float
    slots: list[SlotPublic]
    sources: list[SourcePublic]
    pre_reply: str
    """The pre-reply body (PII masked) an agent accepts or edits."""
    reply_status: str
    """ready (every safety check passed) | review (look carefully)."""
    final_reply: str | None
    final_intent: str | None
    note: str | None
    content_item_id: str
    publication_id: str
    model_version_id: str
    feedback_event_id: int | None
    decided_by: str | None
    decided_at: datetime | None
    created_by: str
    created_at: datetime
    generator: str = Field(
        default="template", description="How the pre-reply was composed: template | lm | template-fallback"
    )
    fallback_reason: str | None = Field(
        default=None, description="Why the language model's sentence was not used (template-fallback)"
    )


class TicketPage(BaseModel):
    items: list[TicketPublic]
    status: str


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The customer's message.")
    top_k: int = Field(default=5, ge=1, le=20, description="Sources to retrieve.")


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: str | None = Field(default=None, min_length=1, max_length=128, description="Confirm or correct.")


class EditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reply: str = Field(min_length=1, max_length=8_000, description="The reply as it should have been.")
    intent: str | None = Field(default=None, min_length=1, max_length=128, description="Confirm or correct.")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2_000)


def _public(ticket: Ticket) -> TicketPublic:
    return TicketPublic.model_validate(ticket, from_attributes=True)


def _actor(request: Request) -> str:
    principal: Principal = request.state.principal
    return f"api:{principal.name}"[:128]


@router.post(
    "/support/tickets",
    response_model=TicketPublic,
    status_code=status.HTTP_201_CREATED,
    operation_id="create_support_ticket",
    summary="Structure a customer query, retrieve sources, queue the labelled pre-reply for an agent",
    responses={**ERROR_RESPONSES, 400: {"model": ErrorBody, "description": "The query cannot be used"}},
    **requires("editor"),
)
def create_ticket_route(
    request: Request, workspace: WorkspaceDep, catalog: CatalogDep, body: SubmitBody
) -> TicketPublic:
    app = load_app(workspace)
    return _public(submit(workspace, catalog, app, body.query, actor=_actor(request), k=body.top_k))


@router.get(
    "/support/tickets",
    response_model=TicketPage,
    operation_id="list_support_tickets",
    summary="The agent queue (or any status), oldest first",
    **requires("reviewer"),
)
def list_tickets_route(
    catalog: CatalogDep,
    status: Annotated[str, Query(max_length=16, json_schema_extra={"enum": [*STATUSES, "any"]})] = "queued",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TicketPage:
    tickets = list_tickets(catalog, None if status == "any" else status, limit=limit)
    return TicketPage(items=[_public(ticket) for ticket in tickets], status=status)


@router.get(
    "/support/tickets/{ticket_id}",
    response_model=TicketPublic,
    operation_id="get_support_ticket",
    summary="One ticket: masked query, structured fields, sources, pre-reply, decision",
    responses=ERROR_RESPONSES,
    **requires("reviewer"),
)
def get_ticket_route(catalog: CatalogDep, ticket_id: TicketId) -> TicketPublic:
    return _public(get_ticket(catalog, ticket_id))


@router.post(
    "/support/tickets/{ticket_id}/accept",
    response_model=TicketPublic,
    operation_id="accept_support_ticket",
    summary="Accept the pre-reply as it is (a like on its publication)",
    responses=DECISION_RESPONSES,
    **requires("reviewer"),
)
def accept_route(
    request: Request, catalog: CatalogDep, ticket_id: TicketId, body: AcceptBody | None = None
) -> TicketPublic:
    intent = body.intent if body is not None else None
    return _public(decide(catalog, ticket_id, "accept", actor=_actor(request), intent=intent))


@router.post(
    "/support/tickets/{ticket_id}/edit",
    response_model=TicketPublic,
    operation_id="edit_support_ticket",
    summary="Replace the pre-reply with the agent's corrected reply (an edit event: training data)",
    responses=DECISION_RESPONSES,
    **requires("reviewer"),
)
def edit_route(request: Request, catalog: CatalogDep, ticket_id: TicketId, body: EditBody) -> TicketPublic:
    ticket = decide(catalog, ticket_id, "edit", actor=_actor(request), text=body.reply, intent=body.intent)
    return _public(ticket)


@router.post(
    "/support/tickets/{ticket_id}/reject",
    response_model=TicketPublic,
    operation_id="reject_support_ticket",
    summary="Reject the pre-reply (a dislike on its publication), with an optional reason",
    responses=DECISION_RESPONSES,
    **requires("reviewer"),
)
def reject_route(
    request: Request, catalog: CatalogDep, ticket_id: TicketId, body: RejectBody | None = None
) -> TicketPublic:
    reason = body.reason if body is not None else None
    return _public(decide(catalog, ticket_id, "reject", actor=_actor(request), note=reason))

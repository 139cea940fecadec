"""The agent console page of the support app: the queue of pre-replies, accept / edit / reject.

    GET  /console/support                queued tickets (oldest first) + the latest decided   reviewer
    POST /console/support/{id}/accept    form: intent?                                        reviewer
    POST /console/support/{id}/edit      form: reply, intent?                                 reviewer
    POST /console/support/{id}/reject    form: reason?                                        reviewer

Each ticket shows its structured fields (language, intent with confidence, slots — PII slots as
their type only), the retrieved sources and the pre-reply; the edit form's textarea starts
with the pre-reply. Forms carry the session's CSRF token and post to routes guarded by
`requires("reviewer")`, which checks it; the work is `apps.support.queue.decide`. A refused
decision (already decided: 409, unknown ticket: 404) re-renders the page with the error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from genloop.apps.support.queue import decide, list_tickets
from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.server.auth import requires
from genloop.server.deps import CatalogDep, TemplatesDep
from genloop.server.errors import status_for
from genloop.server.web.console import VisitorDep, acting, back_to, page, signed_in

router = APIRouter(include_in_schema=False)

RECENT_DECIDED = 20
OptionalText = Annotated[str, Form(max_length=8_000)]


def _context(catalog: Catalog) -> dict[str, object]:
    decided = [t for t in list_tickets(catalog, None, limit=500) if t.status != "queued"]
    decided.sort(key=lambda ticket: ticket.decided_at or ticket.created_at, reverse=True)
    return {
        "active": "support",
        "queued": list_tickets(catalog, "queued", limit=100),
        "decided": decided[:RECENT_DECIDED],
    }


@router.get("/console/support", name="console_support", response_model=None)
def support_queue(
    request: Request, visitor: VisitorDep, catalog: CatalogDep, templates: TemplatesDep
) -> Response:
    principal = signed_in(request, visitor, "reviewer")
    if isinstance(principal, Response):
        return principal
    context = {**_context(catalog), "done": request.query_params.get("done")}
    return page(templates, request, principal, "console/support.html", context)


def _act(
    request: Request, catalog: Catalog, templates: Jinja2Templates, action: Callable[[str], object], done: str
) -> Response:
    try:
        action(f"console:{acting(request).name}"[:128])
    except GenloopError as error:
        context = {**_context(catalog), "error": error}
        return page(templates, request, acting(request), "console/support.html", context, status_for(error))
    return back_to(f"/console/support?done={quote(done)}")


def _optional(value: str) -> str | None:
    return value.strip() or None


@router.post(
    "/console/support/{ticket_id}/accept",
    name="console_support_accept",
    response_model=None,
    **requires("reviewer"),
)
def accept(
    request: Request, catalog: CatalogDep, templates: TemplatesDep, ticket_id: str, intent: OptionalText = ""
) -> Response:
    def act(actor: str) -> object:
        return decide(catalog, ticket_id, "accept", actor=actor, intent=_optional(intent))

    return _act(request, catalog, templates, act, "accepted")


@router.post(
    "/console/support/{ticket_id}/edit",
    name="console_support_edit",
    response_model=None,
    **requires("reviewer"),
)
def edit(
    request: Request,
    catalog: CatalogDep,
    templates: TemplatesDep,
    ticket_id: str,
    reply: OptionalText = "",
    intent: OptionalText = "",
) -> Response:
    def act(actor: str) -> object:
        return decide(catalog, ticket_id, "edit", actor=actor, text=reply, intent=_optional(intent))

    return _act(request, catalog, templates, act, "edited")


@router.post(
    "/console/support/{ticket_id}/reject",
    name="console_support_reject",
    response_model=None,
    **requires("reviewer"),
)
def reject(
    request: Request, catalog: CatalogDep, templates: TemplatesDep, ticket_id: str, reason: OptionalText = ""
) -> Response:
    def act(actor: str) -> object:
        return decide(catalog, ticket_id, "reject", actor=actor, note=_optional(reason))

    return _act(request, catalog, templates, act, "rejected")

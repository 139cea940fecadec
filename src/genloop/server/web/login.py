"""Console sign-in: `GET /login` (a form for an API key), `POST /login`, `POST /logout`.

`POST /login` checks the key once and sets the `genloop_session` cookie from
`auth.make_session` (HttpOnly, SameSite=Strict, Secure over https); the key itself is not
kept. It then redirects to `next` only when that is a path on this site (`/review`), never
to another host (`//evil.example`, `https://…`, `/\\evil`): no open redirect.

Login and logout are public (anyone may try a key), so they defend against cross-site
requests by origin: a browser request whose `Origin` is another site, or whose
`Sec-Fetch-Site` says cross-site, is refused (403). That stops "login CSRF" (a page signing
the visitor in as the attacker). Non-browser clients send neither header and pass.

Templates get the signed-in principal and the CSRF token through `console_context`::

    context = {**console_context(request), "items": items}
    # in the template:
    #   {% if console.principal %}{{ console.principal.name }}{% endif %}
    #   <input type="hidden" name="{{ console.csrf_field }}" value="{{ console.csrf_token }}">

or, once `register_console_globals(templates.env)` has run, `console_state()` in any template
(the same dict: `{% set console = console_state() %}`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.concurrency import run_in_threadpool

from genloop.server.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_SECONDS,
    authenticate_key,
    csrf_token,
    make_session,
    session_principal,
)
from genloop.server.deps import TemplatesDep

router = APIRouter(tags=["login"])

MAX_NEXT_CHARS = 2048
DEFAULT_NEXT = "/"


def console_context(request: Request) -> dict[str, Any]:
    """What console templates need about the visitor, under the key `console`.

    `{"console": {"principal": Principal | None, "csrf_token": str | None, "csrf_field":
    "csrf_token"}}`: the principal of the session cookie (None when signed out, expired or
    revoked) and the CSRF token every state-changing console form must post back.
    Blocking (one catalog read): call it from a sync route, or via `run_in_threadpool`.
    """
    principal = session_principal(request)
    token = (
        csrf_token(request.app.state.workspace, principal.session)
        if principal and principal.session
        else None
    )
    return {"console": {"principal": principal, "csrf_token": token, "csrf_field": CSRF_FIELD}}


@pass_context
def _console_global(context: Context) -> dict[str, Any]:
    console: dict[str, Any] = console_context(context["request"])["console"]
    return console


def register_console_globals(env: Environment) -> None:
    """Make `console_state()` (the inner dict of `console_context`) available in every template."""
    env.globals["console_state"] = _console_global


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else `/`: the guard against open redirects."""
    if not target or len(target) > MAX_NEXT_CHARS or not target.startswith("/"):
        return DEFAULT_NEXT
    if (
        target.startswith("//")
        or "\\" in target
        or any(ord(char) < 0x20 or ord(char) == 0x7F for char in target)
    ):
        return DEFAULT_NEXT  # `//host` and `/\host` are other hosts to a browser
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


def require_same_origin(request: Request) -> None:
    """Refuse a browser request sent by another site (login CSRF)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site sign-in requests are refused")
    origin = request.headers.get("origin")
    if origin is not None:
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin != expected:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"request from origin {origin!r} refused")


def _login_page(request: Request, templates: TemplatesDep, **context: Any) -> HTMLResponse:
    code = context.pop("status_code", status.HTTP_200_OK)
    page: HTMLResponse = templates.TemplateResponse(
        request, "login.html", {"active": "login", **console_context(request), **context}, status_code=code
    )
    return page


@router.get("/login", name="login_page", include_in_schema=False, response_class=HTMLResponse)
def login_page(
    request: Request,
    templates: TemplatesDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=MAX_NEXT_CHARS)] = None,
) -> HTMLResponse:
    return _login_page(request, templates, next=safe_next(next_path), error=None)


@router.post(
    "/login",
    name="login",
    operation_id="login",
    summary="Sign in to the console with an API key (sets the session cookie)",
    response_class=RedirectResponse,
    response_model=None,
    status_code=status.HTTP_303_SEE_OTHER,
    responses={
        401: {"description": "Unknown or revoked key (the form again)"},
        403: {"description": "Cross-site"},
    },
)
async def login(
    request: Request,
    templates: TemplatesDep,
    key: Annotated[str, Form(min_length=1, max_length=256)],
    next_path: Annotated[str, Form(alias="next", max_length=MAX_NEXT_CHARS)] = DEFAULT_NEXT,
) -> Response:
    require_same_origin(request)
    principal = await run_in_threadpool(authenticate_key, request.app.state.catalog, key.strip())
    target = safe_next(next_path)
    if principal is None:
        return await run_in_threadpool(
            _login_page,
            request,
            templates,
            next=target,
            error="That key is unknown or revoked. Check it, or ask an admin for a new one.",
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    cookie = await run_in_threadpool(make_session, request.app.state.workspace, principal.key_id)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post(
    "/logout",
    name="logout",
    operation_id="logout",
    summary="Sign out of the console (clears the session cookie)",
    response_class=RedirectResponse,
    response_model=None,
    status_code=status.HTTP_303_SEE_OTHER,
    responses={403: {"description": "Cross-site"}},
)
def logout(request: Request) -> Response:
    require_same_origin(request)
    response = RedirectResponse(request.app.url_path_for("login_page"), status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response

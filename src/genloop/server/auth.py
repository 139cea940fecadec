"""Who may write: API keys with roles, console sessions, CSRF.

Roles are ordered; each includes the ones before it::

    viewer < reviewer < editor < admin

    viewer    read the non-public API (datasets, runs, models, jobs, analytics)
    reviewer  + approve / reject items in the review queue, annotate
    editor    + generate, publish, train, promote models, import feedback
    admin     + manage API keys

Anonymous requests may only view published items and send feedback (rate-limited per
viewer). Keys are `gl_<id>_<secret>`; the catalog stores only the SHA-256 of the whole
key (a random 256-bit secret needs no slow hash), so a leaked catalog leaks no key. The
`GENLOOP_ADMIN_KEY` environment variable is an admin key that never touches the catalog
(bootstrap: create the real keys with it, or with `genloop keys create` on the machine).
A key's `last_used_at` is written at most once a minute (`LAST_USED_RESOLUTION`), with a
conditional UPDATE, so a busy client costs no write per request and two workers agree.

A route declares its role with `**requires("editor")`: the dependency authenticates and
authorises, and the OpenAPI operation carries `x-genloop-role`, which the role-matrix test
reads to try every write endpoint with every role.

Console (browser) sessions: `POST /login` with a key sets the `genloop_session` cookie
(HttpOnly, SameSite=Strict) holding the key id, an expiry and an HMAC under the
workspace's session secret (`.genloop/keys/session.secret`, created on first use and
shared by every worker through the file). Requests authenticated by that cookie that
change state must also carry the CSRF token (form field `csrf_token` or header
`X-CSRF-Token`), an HMAC of the session; header-authenticated API calls need none
(a cross-site page cannot set headers).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import bindparam, or_, select, update

from genloop.catalog import Catalog
from genloop.catalog.models import ApiKey
from genloop.errors import GenloopError, NotFoundError
from genloop.server.writers import run_blocking
from genloop.storage import atomic_write_bytes
from genloop.workspace import Workspace

Role = Literal["viewer", "reviewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer", "editor", "admin")
ADMIN_KEY_ENV = "GENLOOP_ADMIN_KEY"
SESSION_COOKIE = "genloop_session"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_KEY_CHARS = 128


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role
    via: Literal["header", "session", "env"]
    session: str | None = None
    """The raw session cookie (session logins only): what the CSRF token is derived from."""

    def has(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    role: Role
    secret: str
    """Shown once; only its SHA-256 is stored."""


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise GenloopError(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    return role


def create_api_key(catalog: Catalog, *, name: str, role: str) -> CreatedKey:
    checked = _check_role(role)
    if not name.strip() or len(name) > 128:
        raise GenloopError("a key needs a name of 1–128 characters (who or what uses it)")
    key_id = secrets.token_hex(4)
    secret = f"gl_{key_id}_{secrets.token_urlsafe(32)}"
    with catalog.session() as session:
        session.add(ApiKey(id=key_id, name=name.strip(), role=checked, secret_sha256=_sha256(secret)))
    return CreatedKey(key_id, name.strip(), checked, secret)


def revoke_api_key(catalog: Catalog, key_id: str) -> None:
    with catalog.session() as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise NotFoundError(f"no API key {key_id!r}", hint="`genloop keys ls` lists them")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)


def list_api_keys(catalog: Catalog) -> list[ApiKey]:
    with catalog.session() as session:
        keys = list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))
        session.expunge_all()
        return keys


def has_admin_key(catalog: Catalog) -> bool:
    """True when GENLOOP_ADMIN_KEY is set or the catalog holds a non-revoked admin key."""
    if os.environ.get(ADMIN_KEY_ENV):
        return True
    with catalog.session() as session:
        query = select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None)).limit(1)
        return session.scalars(query).first() is not None


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


_KEY_COLUMNS = (ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.revoked_at, ApiKey.last_used_at)
# Core statements on a pooled connection, not an ORM session: every authenticated request runs
# one, and the session's unit of work cost 4× the CPU of the query itself on SQLite (0.45 vs
# 0.11 ms a check here; 1.8 vs 0.7 ms on PostgreSQL). Compiled once per process (cached).
_KEY_BY_HASH = select(*_KEY_COLUMNS).where(ApiKey.secret_sha256 == bindparam("secret_sha256"))
_KEY_BY_ID = select(*_KEY_COLUMNS).where(ApiKey.id == bindparam("key_id"))


def _mark_used(catalog: Catalog, key_id: str, last_used_at: datetime | None) -> None:
    """Record a use, at most once per LAST_USED_RESOLUTION per key.

    The conditional UPDATE (only when still stale) makes concurrent workers write once.
    """
    now = datetime.now(UTC)
    last = _aware(last_used_at)
    if last is not None and now - last < LAST_USED_RESOLUTION:
        return
    stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION)
    with catalog.engine.begin() as connection:
        connection.execute(update(ApiKey).where(ApiKey.id == key_id, stale).values(last_used_at=now))


def _principal(
    catalog: Catalog, query: Any, params: dict[str, str], via: Literal["header", "session"]
) -> Principal | None:
    """The principal of the one key `query` finds, None when there is none or it is revoked."""
    # autocommit: one read needs no transaction, and on PostgreSQL BEGIN and ROLLBACK were two
    # of the check's four round trips
    with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        key = connection.execute(query, params).first()
    if key is None or key.revoked_at is not None:
        return None
    _mark_used(catalog, key.id, key.last_used_at)
    return Principal(key.id, key.name, _check_role(key.role), via)


def authenticate_key(catalog: Catalog, secret: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, malformed or revoked)."""
    env_key = os.environ.get(ADMIN_KEY_ENV, "")
    if env_key and hmac.compare_digest(secret.encode(), env_key.encode()):
        return Principal("env", ADMIN_KEY_ENV, "admin", "env")
    if not secret.startswith("gl_") or len(secret) > MAX_KEY_CHARS:
        return None
    return _principal(catalog, _KEY_BY_HASH, {"secret_sha256": _sha256(secret)}, "header")


def _principal_for_id(catalog: Catalog, key_id: str) -> Principal | None:
    if key_id == "env":
        return Principal("env", ADMIN_KEY_ENV, "admin", "session") if os.environ.get(ADMIN_KEY_ENV) else None
    return _principal(catalog, _KEY_BY_ID, {"key_id": key_id}, "session")


# -- sessions and CSRF --------------------------------------------------------------------------


def session_secret(workspace: Workspace) -> bytes:
    """The workspace's HMAC secret for session cookies and CSRF tokens (created once, 0600)."""
    path: Path = workspace.path("keys", "session.secret")
    if not path.is_file():
        with workspace.lock("session-secret"):
            if not path.is_file():
                atomic_write_bytes(path, secrets.token_bytes(32))
                path.chmod(0o600)
    return path.read_bytes()


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def make_session(workspace: Workspace, key_id: str, *, now: float | None = None) -> str:
    expiry = int((now or time.time()) + SESSION_SECONDS)
    body = f"{key_id}.{expiry}"
    return f"{body}.{_mac(session_secret(workspace), 'session:' + body)}"


def read_session(workspace: Workspace, value: str, *, now: float | None = None) -> str | None:
    """The key id of a valid, unexpired session cookie, else None."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    key_id, expiry, mac = parts
    expected = _mac(session_secret(workspace), f"session:{key_id}.{expiry}")
    if not hmac.compare_digest(mac, expected) or int(expiry) < (now or time.time()):
        return None
    return key_id


def csrf_token(workspace: Workspace, session: str) -> str:
    return _mac(session_secret(workspace), "csrf:" + session)


# -- FastAPI dependencies -----------------------------------------------------------------------


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's console session cookie, or None (no, bad, expired or revoked).

    Blocking (one catalog read): call it from a sync route or a threadpool.
    """
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    key_id = read_session(request.app.state.workspace, cookie)
    principal = _principal_for_id(request.app.state.catalog, key_id) if key_id else None
    if principal is None:
        return None
    return Principal(principal.key_id, principal.name, principal.role, "session", cookie)


async def current_principal(request: Request) -> Principal | None:
    """Who is calling: a key in the headers, else a console session; None when anonymous.

    A presented key that is wrong is an error (401), not anonymity: a client with a typo in
    its key must hear about it rather than silently lose its rights. The catalog reads run
    on the blocking pool (server/writers.py), so a slow database never stalls the event loop.
    """
    catalog: Catalog = request.app.state.catalog
    presented = _presented_key(request)
    if presented is not None:
        principal = await run_blocking(authenticate_key, catalog, presented)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return principal
    if not request.cookies.get(SESSION_COOKIE):
        return None
    return await run_blocking(session_principal, request)


async def _check_csrf(request: Request, principal: Principal) -> None:
    if principal.via != "session" or request.method in SAFE_METHODS or principal.session is None:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").lower().startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = csrf_token(request.app.state.workspace, principal.session)
    if sent is None or not hmac.compare_digest(sent, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token; reload the page")


def require_role(role: Role) -> Callable[..., Any]:
    async def dependency(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"this needs an API key with role {role} or higher (Authorization: Bearer KEY)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.principal = principal  # before the checks, so a refusal is logged with its key id
        if not principal.has(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {principal.role} may not do this; it needs {role}"
            )
        await _check_csrf(request, principal)
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def requires(role: Role) -> dict[str, Any]:
    """Route keyword arguments: `@router.post(..., **requires("editor"))`."""
    return {"dependencies": [Depends(require_role(role))], "openapi_extra": {"x-genloop-role": role}}


async def sees_unpublished(request: Request) -> bool:
    """Reviewers and up see items that are not published (in review, rejected, not yet out);
    for everyone else such items do not exist (404), so their files cannot leak."""
    principal = await current_principal(request)
    return principal is not None and principal.has("reviewer")

"""Every write endpoint × every role, no key included: 0 unauthorised writes (SQLite + PostgreSQL).

The routes come from the app itself, so a route anyone adds is checked without editing
this file: every operation in the OpenAPI document, plus every route kept out of it
(console forms), with a method other than GET/HEAD/OPTIONS. Each must declare its role
with `**requires(role)` (the OpenAPI `x-genloop-role`) or be in `PUBLIC_WRITES`.

For a declared role R, each of these must be refused, and nothing may be written:

* no key → 401; a wrong key → 401;
* a key of every role below R → 403;
* a console session of role R (or admin) without the CSRF token → 403.

Then R, and admin, must get through (anything but 401/403, and no 5xx).

The bodies: FastAPI runs the dependencies of `dependencies=[...]` (where `requires` puts
the role check) *before* it reports body, query or path validation errors, but only once
the body has been read: malformed JSON is a 422 before any dependency runs. So every
attempt sends the well-formed `{}` (Content-Type: application/json), and for refusals
only 401/403 counts: a 422 there would mean the body was judged before the caller was.
(Checked against FastAPI 0.165: a route with a denying dependency answers `{}` with 401
even when the path parameter has the wrong type.)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Mount, Route
from tests.server.conftest import seed_catalog

from genloop.catalog.models import Base
from genloop.server.app import create_app
from genloop.server.auth import (
    ROLES,
    SESSION_COOKIE,
    CreatedKey,
    Role,
    create_api_key,
    make_session,
    revoke_api_key,
    session_secret,
)
from genloop.workspace import Workspace

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_WRITES = {
    "create_feedback": "anonymous viewers send feedback on published items (rate-limited per viewer)",
    "login": "anyone may try a key; refused cross-site",
    "logout": "clears the caller's own cookie; refused cross-site",
}
"""Operation id → why it needs no key. Keep this list short: each entry is a door."""
PUBLIC_PATH_PREFIXES = ("/api/v1/feedback",)
"""Public feedback routes other than `create_feedback` (batch ingestion) may be added here by path."""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    role: Role | None

    def url(self, path_value: str = "1") -> str:
        """The path with every parameter filled by `path_value` (`1`: valid for str and int)."""
        return re.sub(r"\{[^}]+\}", path_value, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.operation_id}, role {self.role})"


def write_operations(app: FastAPI) -> tuple[list[Operation], list[str]]:
    """Every non-GET route of the app, and the problems found listing them.

    FastAPI ≥ 0.165 keeps included routers as branches of `app.routes`; `iter_route_contexts`
    walks them and gives each route its full path.
    """
    problems: list[str] = []
    operations: list[Operation] = []
    schema = app.openapi()
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, str(context.path_format)
        if isinstance(route, Mount):
            continue  # static files: GET only
        if isinstance(route, APIRoute):
            role = (route.openapi_extra or {}).get("x-genloop-role")
            for method in sorted(route.methods - SAFE):
                if route.include_in_schema:
                    documented = schema["paths"].get(path, {}).get(method.lower(), {})
                    if documented.get("x-genloop-role") != role:
                        problems.append(
                            f"{method} {path}: its OpenAPI x-genloop-role differs from the route's"
                        )
                operations.append(Operation(method, path, route.operation_id or route.unique_id, role))
        elif isinstance(route, Route) and route.methods and route.methods - SAFE:
            problems.append(
                f"{path}: a plain Starlette route that writes; make it an APIRoute with requires()"
            )
    return operations, problems


def catalog_digest(seeded: SeededCatalog) -> dict[str, tuple[int, str]]:
    """(row count, SHA-256 of every row) per table: an unauthorised update shows, not only an insert.

    `api_keys.last_used_at` is left out: a refused caller with a real key is still recorded
    as having used it (once a minute), which is bookkeeping, not a write on their behalf.
    """
    digest: dict[str, tuple[int, str]] = {}
    with seeded.catalog.session() as session:
        for table in Base.metadata.sorted_tables:
            columns = [
                column
                for column in table.columns
                if (table.name, column.name) != ("api_keys", "last_used_at")
            ]
            rows = session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            digest[table.name] = (
                len(rows),
                hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest(),
            )
    return digest


def state_files(seeded: SeededCatalog) -> dict[str, int]:
    """Files of the workspace's state dir (size by path), the catalog's own files aside."""
    root: Path = seeded.workspace.state_dir
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith("genloop.db")
    }


class Attempts:
    """One TestClient, no cookie jar carried between attempts."""

    def __init__(self, client: TestClient, path_value: str) -> None:
        self.client = client
        self.path_value = path_value

    def send(self, operation: Operation, headers: dict[str, str]) -> int:
        self.client.cookies.clear()
        response = self.client.request(
            operation.method,
            operation.url(self.path_value),
            content=b"{}",
            headers={"Content-Type": "application/json", **headers},
            follow_redirects=False,
        )
        return response.status_code


@dataclass
class MatrixReport:
    operations: list[Operation]
    problems: list[str]
    attempts: int
    changed_tables: dict[str, tuple[tuple[int, str], tuple[int, str]]]
    files_changed: bool


def run_matrix(app: FastAPI, seeded: SeededCatalog, path_value: str = "1") -> MatrixReport:
    """Try every write operation of `app` as every kind of caller; see what was refused and written."""
    operations, problems = write_operations(app)
    keys = {role: create_api_key(seeded.catalog, name=f"matrix-{role}", role=role) for role in ROLES}
    sessions = {role: make_session(seeded.workspace, keys[role].id) for role in ROLES}
    session_secret(seeded.workspace)  # created before the snapshot: not a write of any attempt
    for op in operations:
        listed = op.operation_id in PUBLIC_WRITES or op.path.startswith(PUBLIC_PATH_PREFIXES)
        if op.role is None and not listed:
            problems.append(f"{op}: no requires(role) and not in PUBLIC_WRITES")
    guarded = [op for op in operations if op.role is not None]

    before, files_before = catalog_digest(seeded), state_files(seeded)
    attempts = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        send = Attempts(client, path_value).send
        for op in guarded:
            for who, headers, expected in refusals(op, keys, sessions):
                status = send(op, headers)
                attempts += 1
                if status != expected:
                    problems.append(f"{op}: {who} got {status}, expected {expected}")
        after, files_after = catalog_digest(seeded), state_files(seeded)
        # the allowed callers get through (whatever the empty body then earns them)
        for op in guarded:
            for role in {op.role, "admin"}:
                status = send(op, {"Authorization": f"Bearer {keys[role].secret}"})
                if status in (401, 403) or status >= 500:
                    problems.append(f"{op}: a {role} key got {status}")
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    return MatrixReport(operations, problems, attempts, changed, files_after != files_before)


def refusals(
    op: Operation, keys: dict[Role, CreatedKey], sessions: dict[Role, str]
) -> list[tuple[str, dict[str, str], int]]:
    """(who, headers, expected status) for every caller `op` must refuse."""
    assert op.role is not None
    tries: list[tuple[str, dict[str, str], int]] = [
        ("no key", {}, 401),
        ("a wrong key", {"Authorization": "Bearer gl_00000000_wrong"}, 401),
    ]
    for lower in ROLES[: ROLES.index(op.role)]:
        tries.append((f"a {lower} key", {"Authorization": f"Bearer {keys[lower].secret}"}, 403))
    for role in sorted({op.role, "admin"}):
        cookie = {"Cookie": f"{SESSION_COOKIE}={sessions[role]}"}
        tries.append((f"a {role} session without CSRF token", cookie, 403))
    return tries


def test_every_write_endpoint_refuses_every_role_below_its_own(seeded: SeededCatalog) -> None:
    report = run_matrix(create_app(seeded.workspace), seeded)
    ids = {op.operation_id for op in report.operations}
    assert {"create_key", "revoke_key", "create_feedback", "login", "logout"} <= ids
    stale = set(PUBLIC_WRITES) - {op.operation_id for op in report.operations if op.role is None}
    assert not stale, f"PUBLIC_WRITES names operations that are not public writes: {stale}"
    assert not report.changed_tables, f"unauthorised attempts wrote to the catalog: {report.changed_tables}"
    assert not report.files_changed, "unauthorised attempts wrote files in the workspace"
    summary = f"{len(report.problems)} problem(s) in {report.attempts} refused attempts"
    assert not report.problems, summary + ":\n" + "\n".join(report.problems)


def test_the_matrix_catches_an_unguarded_and_a_falsely_labelled_route(sqlite_workspace: Workspace) -> None:
    """The test above can fail: a route without requires(), and one that only claims a role."""
    seeded = seed_catalog(sqlite_workspace)
    app = create_app(seeded.workspace)
    router = APIRouter(prefix="/api/v1")

    @router.post("/oops", operation_id="oops_unguarded")
    def unguarded(request: Request) -> dict[str, str]:
        return {}

    @router.post("/oops/{key_id}", operation_id="oops_labelled", openapi_extra={"x-genloop-role": "admin"})
    def labelled_only(key_id: str, request: Request) -> dict[str, str]:
        revoke_api_key(request.app.state.catalog, key_id)  # writes, yet checks nobody
        return {}

    app.include_router(router)
    victim = create_api_key(seeded.catalog, name="victim", role="viewer")
    report = run_matrix(app, seeded, path_value=victim.id)
    text = "\n".join(report.problems)
    assert "oops_unguarded" in text and "not in PUBLIC_WRITES" in text
    assert "oops_labelled" in text and "no key got 200, expected 401" in text
    assert "api_keys" in report.changed_tables

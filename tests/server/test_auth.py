"""API keys, console sessions, CSRF and the public-bind check, against a real catalog (SQLite + PostgreSQL).

Every request goes through the real app over TestClient; keys are made by the same
function `genloop keys create` uses. The role matrix over every write route is in
test_role_matrix.py; this file checks the mechanisms one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from genloop.catalog import Catalog
from genloop.catalog.models import ApiKey
from genloop.cli.serve_cmd import check_bind_host
from genloop.errors import GenloopError
from genloop.server.app import create_app
from genloop.server.auth import (
    ADMIN_KEY_ENV,
    CSRF_HEADER,
    SESSION_COOKIE,
    create_api_key,
    csrf_token,
    make_session,
    read_session,
    revoke_api_key,
)
from genloop.server.web.login import safe_next
from genloop.workspace import Workspace

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog

ENV_ADMIN = "env-admin-" + "x" * 24


@dataclass(frozen=True)
class Site:
    """An app on a SQLite workspace: for the checks whose subject is not the catalog backend."""

    workspace: Workspace
    catalog: Catalog
    client: TestClient


@pytest.fixture
def site(sqlite_workspace: Workspace) -> Iterator[Site]:
    app = create_app(sqlite_workspace)
    with TestClient(app) as client:
        yield Site(sqlite_workspace, app.state.catalog, client)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def last_used(catalog: Catalog, key_id: str) -> datetime | None:
    with catalog.session() as session:
        return session.scalars(select(ApiKey.last_used_at).where(ApiKey.id == key_id)).one()


def sign_in(client: TestClient, secret: str) -> str:
    """Log in through the form; return the CSRF token the signed-in login page shows."""
    response = client.post("/login", data={"key": secret}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/login")
    tokens = re.findall(r'name="csrf_token" value="([0-9a-f]{64})"', page.text)
    assert len(tokens) == 1, page.text
    return tokens[0]


# -- keys over the API ---------------------------------------------------------------------------


def test_admin_creates_lists_and_revokes_keys(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, ENV_ADMIN)
    created = client.post(
        "/api/v1/keys", json={"name": "中文 editor", "role": "editor"}, headers=bearer(ENV_ADMIN)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith(f"gl_{body['id']}_") and "never shown again" in body["warning"]

    listed = client.get("/api/v1/keys", headers=bearer(ENV_ADMIN))
    assert listed.status_code == 200
    assert [(k["id"], k["name"], k["role"]) for k in listed.json()] == [(body["id"], "中文 editor", "editor")]
    assert secret not in listed.text and "sha256" not in listed.text  # never the secret, nor its hash

    # the new key works, with its role's rights only
    assert client.get("/api/v1/keys", headers=bearer(secret)).status_code == 403

    revoked = client.delete(f"/api/v1/keys/{body['id']}", headers=bearer(ENV_ADMIN))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = client.get("/metrics", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json()["detail"] == "invalid or revoked API key"
    assert client.delete("/api/v1/keys/nosuchkey", headers=bearer(ENV_ADMIN)).status_code == 404


def test_bad_input_to_create_key_is_a_clear_4xx_and_stores_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, ENV_ADMIN)
    for body in (
        {"name": "x", "role": "root"},
        {"name": "", "role": "viewer"},
        {"name": "x"},
        {"role": "admin"},
    ):
        response = site.client.post("/api/v1/keys", json=body, headers=bearer(ENV_ADMIN))
        assert response.status_code == 422, (body, response.text)
    assert site.client.get("/api/v1/keys", headers=bearer(ENV_ADMIN)).json() == []


def test_a_wrong_key_is_401_not_anonymous(client: TestClient, seeded: SeededCatalog) -> None:
    """A typo in a key must be heard about, even on a route anonymous visitors could use."""
    viewer = create_api_key(seeded.catalog, name="grafana", role="viewer")
    for wrong in ("gl_deadbeef_nope", viewer.secret + "x", "", "not-a-genloop-key"):
        response = client.get("/metrics", headers=bearer(wrong))
        assert response.status_code == 401, wrong
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"X-API-Key": viewer.secret}).status_code == 200
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and "role viewer" in anonymous.json()["detail"]


def test_env_admin_key_works_only_while_set(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_KEY_ENV, ENV_ADMIN)
    assert site.client.get("/api/v1/keys", headers=bearer(ENV_ADMIN)).status_code == 200
    monkeypatch.delenv(ADMIN_KEY_ENV)
    assert site.client.get("/api/v1/keys", headers=bearer(ENV_ADMIN)).status_code == 401


def test_last_used_is_written_at_most_once_a_minute(client: TestClient, seeded: SeededCatalog) -> None:
    key = create_api_key(seeded.catalog, name="poller", role="viewer")
    assert last_used(seeded.catalog, key.id) is None
    client.get("/metrics", headers=bearer(key.secret))
    first = last_used(seeded.catalog, key.id)
    assert first is not None
    client.get("/metrics", headers=bearer(key.secret))
    assert last_used(seeded.catalog, key.id) == first  # no write per request
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with seeded.catalog.session() as session:
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=long_ago))
    client.get("/metrics", headers=bearer(key.secret))
    refreshed = last_used(seeded.catalog, key.id)
    assert refreshed is not None and refreshed.replace(tzinfo=UTC) > long_ago + timedelta(minutes=4)


# -- console sessions and CSRF -------------------------------------------------------------------


def test_login_sets_a_strict_httponly_session(site: Site) -> None:
    admin = create_api_key(site.catalog, name="ops", role="admin")
    response = site.client.post(
        "/login", data={"key": admin.secret, "next": "/models"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/models"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={admin.id}.")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert admin.secret not in cookie
    page = site.client.get("/login")
    assert "Signed in" in page.text and "ops" in page.text


def test_login_over_https_sets_a_secure_cookie(site: Site) -> None:
    admin = create_api_key(site.catalog, name="ops", role="admin")
    with TestClient(create_app(site.workspace), base_url="https://testserver") as secure_client:
        response = secure_client.post("/login", data={"key": admin.secret}, follow_redirects=False)
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_key_at_login_shows_the_form_again(site: Site) -> None:
    response = site.client.post("/login", data={"key": "gl_00000000_wrong", "next": "/models"})
    assert response.status_code == 401
    assert "unknown or revoked" in response.text and 'value="/models"' in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


OFF_SITE = ("//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example")
OFF_SITE_TOO = ("javascript:alert(1)", "evil.example", "/\tevil", "")


def test_login_never_redirects_off_site(site: Site) -> None:
    admin = create_api_key(site.catalog, name="ops", role="admin")
    for target in (*OFF_SITE, *OFF_SITE_TOO):
        form = {"key": admin.secret, "next": target}
        response = site.client.post("/login", data=form, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/", target


@pytest.mark.parametrize("target", ["/", "/models", "/content/c00?x=1#top", "/review/queue"])
def test_local_next_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


def test_cross_site_login_is_refused(site: Site) -> None:
    """Login CSRF: another site must not sign the visitor in (as the attacker)."""
    admin = create_api_key(site.catalog, name="ops", role="admin")
    cross_site = ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"})
    for headers in cross_site:
        form = {"key": admin.secret}
        response = site.client.post("/login", data=form, headers=headers, follow_redirects=False)
        assert response.status_code == 403, headers
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    same_site = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    ok = site.client.post("/login", data={"key": admin.secret}, headers=same_site, follow_redirects=False)
    assert ok.status_code == 303


def test_session_writes_need_the_csrf_token(site: Site) -> None:
    admin = create_api_key(site.catalog, name="ops", role="admin")
    token = sign_in(site.client, admin.secret)
    body = {"name": "made-in-console", "role": "viewer"}
    assert site.client.post("/api/v1/keys", json=body).status_code == 403  # missing
    assert site.client.post("/api/v1/keys", json=body, headers={CSRF_HEADER: "0" * 64}).status_code == 403
    other = make_session(site.workspace, admin.id, now=1.0e9 + 1)
    wrong_session_token = csrf_token(site.workspace, other)  # a token of another session
    stolen = site.client.post("/api/v1/keys", json=body, headers={CSRF_HEADER: wrong_session_token})
    assert stolen.status_code == 403
    names = [key.name for key in seeded_keys(site.catalog)]
    assert "made-in-console" not in names
    created = site.client.post("/api/v1/keys", json=body, headers={CSRF_HEADER: token})
    assert created.status_code == 201, created.text
    assert site.client.get("/api/v1/keys").status_code == 200  # reads need no token


def test_form_posts_carry_csrf_in_a_field(site: Site) -> None:
    """The console's HTML forms send the token as the `csrf_token` field (logout form on /login)."""
    admin = create_api_key(site.catalog, name="ops", role="admin")
    sign_in(site.client, admin.secret)
    page = site.client.get("/login").text
    assert re.search(r'<form method="post" action="/logout">\s*<input type="hidden" name="csrf_token"', page)
    out = site.client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    assert site.client.get("/metrics").status_code == 401


def test_a_revoked_keys_session_stops_at_once(client: TestClient, seeded: SeededCatalog) -> None:
    viewer = create_api_key(seeded.catalog, name="analyst", role="viewer")
    sign_in(client, viewer.secret)
    assert client.get("/metrics").status_code == 200
    revoke_api_key(seeded.catalog, viewer.id)
    assert client.get("/metrics").status_code == 401


def test_sessions_expire_and_cannot_be_forged(site: Site) -> None:
    workspace: Workspace = site.workspace
    cookie = make_session(workspace, "abcd1234", now=1_000_000.0)
    assert read_session(workspace, cookie, now=1_000_000.0 + 60) == "abcd1234"
    assert read_session(workspace, cookie, now=1_000_000.0 + 13 * 3600) is None
    key_id, expiry, mac = cookie.split(".")
    assert read_session(workspace, f"ffff0000.{expiry}.{mac}", now=1_000_000.0) is None
    assert read_session(workspace, f"{key_id}.{int(expiry) + 3600}.{mac}", now=1_000_000.0) is None
    assert read_session(workspace, "garbage", now=1_000_000.0) is None


def seeded_keys(catalog: Catalog) -> list[ApiKey]:
    with catalog.session() as session:
        keys = list(session.scalars(select(ApiKey)))
        session.expunge_all()
        return keys


# -- genloop serve: a public bind needs an admin key ---------------------------------------------


def test_public_bind_needs_an_admin_key_in_env_or_catalog(
    seeded: SeededCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    catalog = seeded.catalog
    check_bind_host("127.0.0.1", catalog)  # loopback: nothing needed
    with pytest.raises(GenloopError, match=r"refusing to listen on 0\.0\.0\.0") as raised:
        check_bind_host("0.0.0.0", catalog)
    assert "genloop keys create" in (raised.value.hint or "")
    create_api_key(catalog, name="editor", role="editor")
    with pytest.raises(GenloopError, match="refusing"):
        check_bind_host("0.0.0.0", catalog)  # a non-admin key is not enough
    admin = create_api_key(catalog, name="ops", role="admin")
    check_bind_host("0.0.0.0", catalog)
    revoke_api_key(catalog, admin.id)
    with pytest.raises(GenloopError, match="refusing"):
        check_bind_host("0.0.0.0", catalog)  # a revoked one is not either
    monkeypatch.setenv(ADMIN_KEY_ENV, ENV_ADMIN)
    check_bind_host("0.0.0.0", catalog)

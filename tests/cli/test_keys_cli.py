"""`genloop keys create / ls / revoke` through Typer's CliRunner, on a real SQLite workspace."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli import keys_cmd
from genloop.errors import GenloopError, NotFoundError
from genloop.server.auth import authenticate_key
from genloop.workspace import Workspace


def keys_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    keys_cmd.register(app)
    return app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys_app(), ["keys", *args], terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_secret_once_then_ls_never_shows_it(sqlite_workspace: Workspace) -> None:
    ws = str(sqlite_workspace.root)
    code, stdout, stderr = run("create", "--name", "ops team", "--role", "admin", "-w", ws)
    assert code == 0, stderr
    secret = stdout.strip()
    assert re.fullmatch(r"gl_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", secret), stdout  # stdout holds the secret alone
    assert "never shown again" in stderr and secret not in stderr
    principal = authenticate_key(open_catalog(sqlite_workspace.database_url), secret)
    assert principal is not None and principal.role == "admin" and principal.name == "ops team"

    code, listing, _ = run("ls", "-w", ws)
    assert code == 0
    header, row = listing.strip().splitlines()
    assert header.split("\t") == ["id", "name", "role", "created", "last used", "revoked"]
    key_id, name, role, _created, last_used, revoked = row.split("\t")
    assert (key_id, name, role, revoked) == (principal.key_id, "ops team", "admin", "-")
    assert last_used != ""  # authenticate_key above used it
    assert secret not in listing and secret[-20:] not in listing

    code, out, _ = run("ls", "--json", "-w", ws)
    assert [key["id"] for key in json.loads(out)] == [key_id]
    assert secret[-20:] not in out


def test_revoke_stops_the_key(sqlite_workspace: Workspace) -> None:
    ws = str(sqlite_workspace.root)
    _, stdout, _ = run("create", "--name", "grafana", "--role", "viewer", "-w", ws)
    secret = stdout.strip()
    key_id = secret.split("_")[1]
    code, out, _ = run("revoke", key_id, "-w", ws)
    assert code == 0 and f"revoked key {key_id}" in out
    assert authenticate_key(open_catalog(sqlite_workspace.database_url), secret) is None
    _, listing, _ = run("ls", "-w", ws)
    assert listing.strip().splitlines()[1].split("\t")[-1] != "-"  # revoked date shown
    with pytest.raises(NotFoundError, match="no API key 'nope'"):
        run("revoke", "nope", "-w", ws)


def test_bad_role_and_name_are_refused_with_a_hint(sqlite_workspace: Workspace) -> None:
    ws = str(sqlite_workspace.root)
    with pytest.raises(GenloopError) as raised:
        run("create", "--name", "x", "--role", "root", "-w", ws)
    assert "unknown role 'root'" in raised.value.message and "admin" in (raised.value.hint or "")
    with pytest.raises(GenloopError, match="name of 1"):
        run("create", "--name", "   ", "-w", ws)
    _, listing, _ = run("ls", "-w", ws)
    assert len(listing.strip().splitlines()) == 1  # the header only: nothing stored


def test_help_has_examples() -> None:
    result = CliRunner().invoke(keys_app(), ["keys", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Examples" in result.output and "genloop keys create" in result.output

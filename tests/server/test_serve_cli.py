"""`genloop serve`: loopback by default, a network bind only with GENLOOP_ADMIN_KEY, a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from genloop.cli import serve_cmd
from genloop.cli.serve_cmd import ADMIN_KEY_ENV, check_bind_host, is_loopback
from genloop.errors import GenloopError
from genloop.workspace import DATABASE_URL_ENV, Workspace

GOOD_KEY = "k" * 32


def serve_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    serve_cmd.register(app)
    return app


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_need_no_key(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    assert is_loopback(host)
    check_bind_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_network_hosts_need_an_admin_key(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    with pytest.raises(GenloopError) as raised:
        check_bind_host(host)
    assert f"refusing to listen on {host}" in raised.value.message
    assert ADMIN_KEY_ENV in (raised.value.hint or "")
    monkeypatch.setenv(ADMIN_KEY_ENV, "short")
    with pytest.raises(GenloopError, match="at least 16"):
        check_bind_host(host)
    monkeypatch.setenv(ADMIN_KEY_ENV, GOOD_KEY)
    check_bind_host(host)


def test_serve_refuses_0000_without_admin_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    result = CliRunner().invoke(serve_app(), ["serve", "--host", "0.0.0.0", "-w", str(tmp_path)])
    assert isinstance(result.exception, GenloopError)
    assert "refusing to listen on 0.0.0.0" in result.exception.message


def test_genloop_serve_refuses_0000_with_a_clear_error(tmp_path: Path) -> None:
    """Through the real `genloop` entry point: exit code 2, the reason and what to do."""
    env = {key: value for key, value in os.environ.items() if key != ADMIN_KEY_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "genloop.cli.main", "serve", "--host", "0.0.0.0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert ADMIN_KEY_ENV in result.stderr


def test_serve_help_has_examples() -> None:
    result = CliRunner().invoke(serve_app(), ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Examples" in result.output
    assert "--host" in result.output
    assert "127.0.0.1" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_a_real_server(sqlite_workspace: Workspace) -> None:
    port = free_port()
    code = "import typer; from genloop.cli.serve_cmd import serve; typer.run(serve)"
    env = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port), "-w", str(sqlite_workspace.root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "the server did not answer within 60 s"
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in output


def test_the_served_app_freezes_its_startup_heap(sqlite_workspace: Workspace) -> None:
    """`genloop serve` exempts the ≈ 300k objects of its imports from the cyclic collector
    (a full collection walked them for ≈ 150 ms, stalling every request); an app built
    for tests does not (a frozen object is never freed). In subprocesses: freezing this
    test process would keep its garbage forever."""
    env = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}
    build = (
        "import gc, sys; from pathlib import Path; from genloop.server.app import create_app;"
        "from genloop.workspace import Workspace; create_app(Workspace(Path(sys.argv[1])));"
        "print('frozen', gc.get_freeze_count())"
    )
    serve = (
        "import gc, typer, uvicorn;"
        "uvicorn.run = lambda app, **kw: print("
        "'frozen', gc.get_freeze_count(), 'tracked', len(gc.get_objects()));"
        "from genloop.cli.serve_cmd import serve; typer.run(serve)"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for code, args in [(build, [str(sqlite_workspace.root)]), (serve, ["-w", str(sqlite_workspace.root)])]
    ]
    assert outputs[0].split() == ["frozen", "0"]
    served = outputs[1].split()
    frozen, tracked = int(served[served.index("frozen") + 1]), int(served[served.index("tracked") + 1])
    assert frozen > 50_000 and tracked < frozen / 10, outputs[1]

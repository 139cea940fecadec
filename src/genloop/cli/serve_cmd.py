"""`genloop serve`: the web console and JSON API of the workspace (uvicorn).

Binds to 127.0.0.1 by default. Listening on any other interface (reachable from the
network) is refused unless an admin key exists: GENLOOP_ADMIN_KEY set (16 characters at
least), or a non-revoked admin key in the catalog (`genloop keys create --role admin`).
Every write needs a key (the console has a login, /login), and an exposed server must
have someone who can sign in to manage keys: creating that key is the deliberate step
that says "I am exposing this server".

uvicorn's access log is off: it prints raw paths with their query strings. The app logs
one JSON line per request instead (route template, status, duration, key id; see
`genloop.server.logs`).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer
from rich.console import Console

from genloop.catalog import Catalog
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError, WorkspaceError

# = genloop.server.auth.ADMIN_KEY_ENV, not imported here: the CLI loads FastAPI only to serve
ADMIN_KEY_ENV = "GENLOOP_ADMIN_KEY"
MIN_ADMIN_KEY_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: addresses no other machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind_host(host: str, catalog: Catalog | None = None) -> None:
    """Refuse a network-reachable host unless an admin key exists (env of a sensible length, or catalog)."""
    if is_loopback(host):
        return
    key = os.environ.get(ADMIN_KEY_ENV, "")
    if key and len(key) < MIN_ADMIN_KEY_CHARS:
        raise GenloopError(
            f"{ADMIN_KEY_ENV} is {len(key)} characters; at least {MIN_ADMIN_KEY_CHARS} are needed "
            f"to listen on {host}",
            hint='generate one: python -c "import secrets; print(secrets.token_urlsafe(32))"',
        )
    if key:
        return
    from genloop.server.auth import has_admin_key

    if catalog is not None and has_admin_key(catalog):
        return
    raise GenloopError(
        f"refusing to listen on {host}: no admin key exists, so nobody could sign in (/login) to "
        "manage the keys of a server that anyone on the network can reach",
        hint="create one and store its secret: `genloop keys create --name ops --role admin`; or set "
        f"{ADMIN_KEY_ENV} to a long random secret, e.g. "
        f'export {ADMIN_KEY_ENV}="$(python -c "import secrets; print(secrets.token_urlsafe(32))")"; '
        "or keep the default --host 127.0.0.1 (use an SSH tunnel or a reverse proxy)",
    )


def _catalog_for_bind_check(host: str, workspace: WorkspaceOption) -> Catalog | None:
    """The catalog to look for admin keys in, only when the bind needs one (None: no workspace)."""
    if is_loopback(host) or os.environ.get(ADMIN_KEY_ENV):
        return None
    try:
        return open_context(workspace).catalog
    except WorkspaceError:
        return None


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8000,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level (debug, info, warning, error).")
    ] = "warning",
) -> None:
    """Start the web console (gallery, like-rate per model, lineage) and the JSON API."""
    check_bind_host(host, _catalog_for_bind_check(host, workspace))
    ctx = open_context(workspace)

    import uvicorn

    from genloop.server.app import create_app

    app = create_app(ctx.workspace, long_running=True)
    url = _url(host, port)
    console = Console(highlight=False)
    console.print(f"genloop console: [bold]{url}[/bold]   (API docs: {url}docs · stop with Ctrl+C)")
    console.print(f"workspace: {ctx.workspace.root}", style="dim")
    uvicorn.run(
        app, host=host.strip("[]"), port=port, log_level=log_level, server_header=False, access_log=False
    )


def register(app: typer.Typer) -> None:
    """Add `genloop serve` to the `genloop` app."""
    app.command(
        "serve",
        epilog=examples(
            "genloop serve",
            "genloop serve --port 8080 -w ~/projects/shop-photos",
            "genloop keys create --name ops --role admin && genloop serve --host 0.0.0.0",
            'GENLOOP_ADMIN_KEY="$(openssl rand -base64 32)" genloop serve --host 0.0.0.0',
        ),
    )(serve)

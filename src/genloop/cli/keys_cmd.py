"""`genloop keys`: create, list and revoke the API keys of the workspace's server.

Working on the catalog directly is the bootstrap path: whoever can run commands on the
machine (and so read the catalog) may make the first admin key. The secret is printed
once, on stdout alone (so `genloop keys create ... > key.txt` keeps it out of the
terminal), with the warning on stderr; the catalog keeps only its SHA-256.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from genloop.cli.common import WorkspaceOption, examples, open_context

ROLES_HELP = "viewer < reviewer < editor < admin (each includes the ones before)."

keys_app = typer.Typer(
    name="keys",
    help="API keys of the server and console: create (the secret is shown once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples(
        "genloop keys create --name ops --role admin",
        "genloop keys create --name review-team --role reviewer",
        "genloop keys ls",
        "genloop keys revoke 1a2b3c4d",
    ),
)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


@keys_app.command(
    "create",
    epilog=examples(
        "genloop keys create --name ops --role admin",
        "genloop keys create --name grafana --role viewer > grafana.key",
    ),
)
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key (1–128 characters).")],
    role: Annotated[str, typer.Option("--role", help=ROLES_HELP)] = "viewer",
    workspace: WorkspaceOption = None,
) -> None:
    """Create a key and print its secret: the only time it is ever shown."""
    from genloop.server.auth import create_api_key

    ctx = open_context(workspace)
    created = create_api_key(ctx.catalog, name=name, role=role)
    stderr = Console(stderr=True, highlight=False)
    stderr.print(f"created key [bold]{created.id}[/bold] ({created.name}, role {created.role})")
    typer.echo(created.secret)
    stderr.print(
        "[yellow]Store this secret now (a password manager, a secret store): "
        "it is never shown again.[/yellow] Use it as `Authorization: Bearer <secret>`, "
        "or sign in to the console at /login.",
        soft_wrap=True,
    )


@keys_app.command("ls", epilog=examples("genloop keys ls", "genloop keys ls --json"))
def keys_ls(
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List keys: id, name, role, created, last used, revoked (never secrets)."""
    from genloop.server.auth import list_api_keys

    keys = list_api_keys(open_context(workspace).catalog)
    rows = [
        {
            "id": key.id,
            "name": key.name,
            "role": key.role,
            "created_at": key.created_at,
            "last_used_at": key.last_used_at,
            "revoked_at": key.revoked_at,
        }
        for key in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    typer.echo("id\tname\trole\tcreated\tlast used\trevoked")
    for key in keys:
        fields = (key.id, key.name, key.role, _when(key.created_at), _when(key.last_used_at))
        typer.echo("\t".join((*fields, _when(key.revoked_at))))
    Console(stderr=True, highlight=False).print(
        f"{len(keys)} key(s), {sum(key.revoked_at is None for key in keys)} active"
    )


@keys_app.command("revoke", epilog=examples("genloop keys revoke 1a2b3c4d"))
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (first column of `genloop keys ls`).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Revoke a key: every request and console session using it fails from now on."""
    from genloop.server.auth import revoke_api_key

    revoke_api_key(open_context(workspace).catalog, key_id)
    typer.echo(f"revoked key {key_id}")


def register(app: typer.Typer) -> None:
    """Add `genloop keys` to the `genloop` app."""
    app.add_typer(keys_app)

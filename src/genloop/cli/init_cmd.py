"""`genloop init`: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genloop.cli.common import examples
from genloop.progress import say
from genloop.workspace_init import TEMPLATES, init_workspace


def init(
    directory: Annotated[Path, typer.Argument(help="Folder of the new workspace.")] = Path("."),
    template: Annotated[
        str, typer.Option("--template", "-t", help=f"One of: {', '.join(TEMPLATES)}.")
    ] = "images",
    name: Annotated[str | None, typer.Option(help="Project name (names the dataset and model).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing genloop.toml.")] = False,
) -> None:
    """Create a workspace: a commented genloop.toml and the data folder it reads."""
    config_path = init_workspace(directory.resolve(), template, name=name, force=force)
    say(f"[green]✓[/green] wrote {config_path}")
    data_dir = TEMPLATES[template][1]
    if data_dir:
        say(f"  put your data in {directory / data_dir}/ (see the comments in genloop.toml)")
    say(f"  then: cd {directory} && genloop run")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "genloop init my-shoes --template images",
            "genloop init --template text --name support-replies",
            "genloop init demo --template mnist && cd demo && genloop run",
        )
    )(init)

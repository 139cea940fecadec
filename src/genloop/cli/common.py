"""What every CLI verb shares: the workspace option, opening the catalog, dry-run, output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genloop.catalog import open_catalog
from genloop.pipeline.stages import StageContext
from genloop.workspace import Workspace

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (default: the one containing the current directory).",
        envvar="GENLOOP_WORKSPACE",
        show_default=False,
    ),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Say what would run and with which inputs; change nothing.")
]


Context = StageContext  # a workspace and its open catalog: what every verb works on


def find_workspace(workspace: Path | None) -> Workspace:
    """`-w DIR` (or a folder inside one), else the workspace around the current directory."""
    ws = Workspace(workspace.resolve()) if workspace else Workspace.find()
    return Workspace.find(workspace) if workspace and not ws.config_path.is_file() else ws


def open_context(workspace: Path | None) -> Context:
    """Find the workspace, validate its genloop.toml, open (and migrate) its catalog."""
    ws = find_workspace(workspace)
    _ = ws.config  # validate early: a bad genloop.toml is reported before any work starts
    return Context(ws, open_catalog(ws.database_url))


def examples(*lines: str) -> str:
    """An 'Examples' epilog for --help."""
    body = "\n\n".join(f"  $ {line}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"

"""`genloop feedback`: what viewers thought of the published items."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.feedback.analytics import like_rate_by_model_version

feedback_app = typer.Typer(
    name="feedback",
    help="Feedback on published items: like-rate per model version.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples("genloop feedback stats", "genloop feedback stats --json"),
)

BAR_WIDTH = 20


def _bar(rate: float | None) -> str:
    if rate is None:
        return ""
    filled = round(rate * BAR_WIDTH)
    return f"[green]{'█' * filled}[/green][red]{'░' * (BAR_WIDTH - filled)}[/red]"


@feedback_app.command(
    "stats", epilog=examples("genloop feedback stats", "genloop feedback stats --json -w ./shop")
)
def stats(
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Like-rate per model version: likes / (likes + dislikes) over its published items."""
    rates = like_rate_by_model_version(open_context(workspace).catalog)
    if as_json:
        rows = [
            {
                "model_version_id": r.model_version_id,
                "publications": r.publications,
                "likes": r.likes,
                "dislikes": r.dislikes,
                "like_rate": r.like_rate,
            }
            for r in rates
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    if not rates:
        console.print("no model versions yet: run `genloop train` (or `genloop demo`)")
        return
    table = Table("model version", title="like-rate per model version")
    for heading in ("published", "likes", "dislikes", "like-rate"):
        table.add_column(heading, justify="right")
    table.add_column("")
    for rate in rates:
        shown = "-" if rate.like_rate is None else f"{rate.like_rate:.1%}"
        table.add_row(
            rate.model_version_id,
            str(rate.publications),
            str(rate.likes),
            str(rate.dislikes),
            shown,
            _bar(rate.like_rate),
        )
    console.print(table)
    if not any(rate.votes for rate in rates):
        console.print("no votes yet: open the gallery with `genloop serve` and like or dislike items")


def register(app: typer.Typer) -> None:
    """Add the `feedback` group to the `genloop` app."""
    app.add_typer(feedback_app)

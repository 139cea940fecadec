"""`genloop simulate`: a simulated audience reacts to the published items through the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.feedback.personas import persona_from_spec
from genloop.feedback.simulate import AudienceConfig, simulate_audience
from genloop.loop.audience import api_client, workspace_recogniser
from genloop.progress import say


def simulate_command(
    persona: Annotated[
        str,
        typer.Option(
            "--persona",
            "-p",
            help="likes-class:LABEL, bold-strokes[:INK], short-cheerful[:CHARS] or major-key.",
        ),
    ],
    workspace: WorkspaceOption = None,
    url: Annotated[
        str | None, typer.Option(help="A running `genloop serve` (default: the workspace's API in-process).")
    ] = None,
    viewers: Annotated[int, typer.Option(min=1, help="Simulated viewers this round.")] = 30,
    round_: Annotated[
        int, typer.Option("--round", min=0, help="Round number (re-running one stores nothing twice).")
    ] = 0,
    base_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Like rate for items it does not care for.")
    ] = 0.08,
    attention: Annotated[
        float, typer.Option(min=0.1, help="Position bias: looks fall as exp(-position/attention).")
    ] = 25.0,
    limit: Annotated[int, typer.Option(min=1, help="Newest published items shown.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed of the audience.")] = 0,
) -> None:
    """Drive a simulated audience with a hidden taste over the published items, as real viewers would."""
    ctx = open_context(workspace)
    recognise = workspace_recogniser(ctx.workspace) if persona.startswith("likes-class") else None
    chosen = persona_from_spec(persona, recognise=recognise)
    config = AudienceConfig(viewers=viewers, base_rate=base_rate, attention=attention, seed=seed)
    with api_client(ctx.workspace, url) as client:  # in-process (quietly) unless --url
        report = simulate_audience(client, chosen, config, round=round_, limit=limit)
    table = Table(
        "persona", "round", "viewers", "looks", "likes", "dislikes", "like-rate", "sent", "replayed"
    )
    table.add_row(
        chosen.name,
        str(round_),
        str(viewers),
        f"{report.impressions:,}",
        f"{report.likes:,}",
        f"{report.dislikes:,}",
        f"{report.like_rate:.1%}",
        f"{report.sent:,}",
        f"{report.replayed:,}",
    )
    Console().print(table)
    say(
        f"{chosen.name}: {report.likes:,} likes and {report.dislikes:,} dislikes in "
        f"{report.impressions:,} looks by {viewers} viewers (round {round_}); "
        f"{report.replayed:,} of {report.sent:,} events were already stored"
    )
    for note in report.notes:
        say(f"[yellow]note:[/yellow] {note}")


def register(app: typer.Typer) -> None:
    app.command(
        name="simulate",
        epilog=examples(
            "genloop simulate --persona likes-class:7 -w genloop-demo",
            "genloop simulate -p bold-strokes --viewers 50 --round 2",
            "genloop simulate -p short-cheerful --url http://127.0.0.1:8000",
        ),
    )(simulate_command)

"""`genloop improve`: fine-tune a challenger from the champion on what people liked."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from genloop.cli.common import DryRunOption, WorkspaceOption, examples, open_context
from genloop.improve.feedback_data import liked_items
from genloop.improve.recipe import improve
from genloop.models.gates import check_gates
from genloop.progress import say

COMPARED = (
    ("heldout_elbo", "held-out ELBO (nats/image, higher is better)", "{:.2f}"),
    ("conditional_accuracy", "conditional accuracy", "{:.1%}"),
    ("worst_class_accuracy", "worst-class accuracy", "{:.1%}"),
)


def improve_command(workspace: WorkspaceOption = None, dry_run: DryRunOption = False) -> None:
    """Build a training set from liked items, fine-tune the champion on it, evaluate, register."""
    ctx = open_context(workspace)
    name = ctx.config.project.name
    if dry_run:
        liked, events = liked_items(ctx.workspace, ctx.catalog, name)
        say(f"would fine-tune {name}@champion on {len(liked)} liked items ({events} feedback events)")
        return
    with ctx.workspace.lock():
        result = improve(ctx.workspace, ctx.catalog, ctx.config)
    say(
        f"[green]✓[/green] {result.challenger} (alias challenger) fine-tuned from {result.champion} on "
        f"{result.liked} liked items ({result.feedback_events} feedback events; "
        f"dataset version {result.feedback_dataset})"
    )
    table = Table("metric", result.champion + " (champion)", result.challenger + " (challenger)")
    for key, title, fmt in COMPARED:
        if key in result.champion_metrics and key in result.challenger_metrics:
            table.add_row(
                title, fmt.format(result.champion_metrics[key]), fmt.format(result.challenger_metrics[key])
            )
    console = Console(stderr=True)
    console.print(table)
    gates = check_gates(ctx.catalog, result.challenger, ctx.config.gates, champion_id=result.champion)
    if not gates:
        say("no [[gates]] in genloop.toml guard `champion`; promotion is a person's call")
        say(f"promote it with: genloop models promote {result.challenger}")
        return
    gate_table = Table("gate", "rule", "result", "detail", title="promotion gates (genloop.toml [[gates]])")
    for gate in gates:
        verdict = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        gate_table.add_row(gate.metric, gate.rule, verdict, gate.message)
    console.print(gate_table)
    if all(gate.passed for gate in gates):
        say(f"all {len(gates)} gates pass; promote it with: genloop models promote {result.challenger}")
    else:
        failed = sum(not gate.passed for gate in gates)
        say(
            f"[yellow]{failed} of {len(gates)} gates fail[/yellow]: "
            f"`genloop models promote {result.challenger}` will refuse (override with --force and a --reason)"
        )


def register(app: typer.Typer) -> None:
    app.command(
        name="improve",
        epilog=examples("genloop improve", "genloop improve --dry-run", "genloop improve -w genloop-demo"),
    )(improve_command)

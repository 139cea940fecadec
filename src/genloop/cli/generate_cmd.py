"""`genloop generate`: the pipeline's generate stage, or ad hoc from any model version."""

from __future__ import annotations

from typing import Annotated

import typer

from genloop.cli.common import DryRunOption, WorkspaceOption, examples, open_context
from genloop.cli.run_cmd import print_stage
from genloop.generate.engine import GenerationRequest, generate
from genloop.pipeline.runner import run_pipeline
from genloop.progress import say


def generate_command(
    workspace: WorkspaceOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Generate ad hoc from this version (id, name@alias or name)."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Class to draw (repeatable).")
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Images per class (with --model).")] = 4,
    seed: Annotated[int, typer.Option(help="Request seed (with --model); same seed, same bytes.")] = 0,
    force: Annotated[bool, typer.Option("--force", "-f", help="Re-run the stage.")] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Generate labelled images: the pipeline stage, or ad hoc with --model."""
    ctx = open_context(workspace)
    if model is None:
        run_pipeline(
            ctx.workspace,
            ctx.catalog,
            until="generate",
            force=["generate"] if force else (),
            dry_run=dry_run,
            report=print_stage,
        )
        return
    request = GenerationRequest(
        model=model, per_class=count, labels=label, seed=seed, producer=ctx.config.generate.producer
    )
    if dry_run:
        labels = ", ".join(label or ["all"])
        say(f"would generate {count} per class from {model} (labels: {labels}, seed {seed})")
        return
    for item in generate(ctx.workspace, ctx.catalog, request):
        state = "new" if item.created else "existing"
        typer.echo(f"{item.id}\t{item.label}\t{state}\t{item.path}")


def register(app: typer.Typer) -> None:
    app.command(
        name="generate",
        epilog=examples(
            "genloop generate",
            "genloop generate --model digits@champion --label 3 --label 8 -n 4",
            "genloop generate --model digits-v2 --seed 7",
        ),
    )(generate_command)

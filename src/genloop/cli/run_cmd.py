"""`genloop run`, one verb per stage (`collect` … `publish`), and `genloop demo`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from genloop.catalog import open_catalog
from genloop.cli.common import DryRunOption, WorkspaceOption, examples, open_context
from genloop.cli.input_errors import DATA_STAGES, EXIT_STATUS_HELP, exit_on_input_errors
from genloop.config import STAGE_ORDER
from genloop.errors import GenloopError
from genloop.pipeline.runner import StageRun, run_pipeline
from genloop.pipeline.stages import STAGES
from genloop.progress import say
from genloop.workspace import Workspace
from genloop.workspace_init import init_workspace

MAX_DETAIL_LINES = 12
EXECUTORS = ("local", "ray")


def print_stage(run: StageRun) -> None:
    if run.status == "ran":
        took = f"[dim]({run.seconds:.1f}s)[/dim]"
        say(f"[green]✓[/green] [bold]{run.stage:<9}[/bold] {escape(run.summary)}  {took}")
    elif run.status == "cached":
        say(f"[cyan]•[/cyan] [bold]{run.stage:<9}[/bold] [dim]cached: {run.summary}[/dim]")
    else:
        say(f"[yellow]→[/yellow] [bold]{run.stage:<9}[/bold] would run: {escape(run.summary)}")
    for line in run.details[:MAX_DETAIL_LINES]:
        say(f"    [dim]{escape(line)}[/dim]")
    if len(run.details) > MAX_DETAIL_LINES:
        say(f"    [dim]… {len(run.details) - MAX_DETAIL_LINES} more (`genloop data show` has them all)[/dim]")


ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Run data steps with `local` (a process pool) or `ray` (Ray Data); default: [clean].executor.",
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Worker processes for data steps (default: all cores).")
]
ForceOption = Annotated[
    list[str] | None,
    typer.Option("--force", "-f", help="Re-run this stage even if its inputs are unchanged (repeatable)."),
]


def run(
    workspace: WorkspaceOption = None,
    until: Annotated[
        str | None, typer.Option(help=f"Stop after this stage ({', '.join(STAGE_ORDER)}).")
    ] = None,
    force: ForceOption = None,
    executor: ExecutorOption = None,
    workers: WorkersOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Run every stage declared in genloop.toml, in order; unchanged stages are skipped.

    Exit status: 0 ok; 1 error; 3 finished, but records were dropped for input errors
    (unreadable/undecodable/corrupt input; `genloop data show ID` lists them).
    """
    ctx = open_context(workspace)
    declared = ctx.config.pipeline.stages
    if until is not None and until not in declared:
        raise GenloopError(
            f"stage {until!r} is not declared in {ctx.workspace.config_path}",
            hint=f"declared: {', '.join(declared)} ([pipeline].stages)",
        )
    runs = run_pipeline(
        ctx.workspace,
        ctx.catalog,
        until=until or declared[-1],
        force=force or (),
        dry_run=dry_run,
        report=print_stage,
        executor=_checked_executor(executor),
        workers=workers,
    )
    exit_on_input_errors(ctx.catalog, runs)  # exit status 3, see genloop.cli.input_errors


def _checked_executor(name: str | None) -> str | None:
    if name is not None and name not in EXECUTORS:
        raise GenloopError(f"unknown executor {name!r}", hint=f"executors: {', '.join(EXECUTORS)}")
    return name


def _stage_verb(stage: str) -> Callable[..., None]:
    def verb(
        workspace: WorkspaceOption = None,
        force: Annotated[
            bool, typer.Option("--force", "-f", help="Re-run even if inputs are unchanged.")
        ] = False,
        executor: ExecutorOption = None,
        workers: WorkersOption = None,
        dry_run: DryRunOption = False,
    ) -> None:
        ctx = open_context(workspace)
        runs = run_pipeline(
            ctx.workspace,
            ctx.catalog,
            until=stage,
            force=[stage] if force else (),
            dry_run=dry_run,
            report=print_stage,
            executor=_checked_executor(executor),
            workers=workers,
        )
        exit_on_input_errors(ctx.catalog, runs)  # exit status 3, see genloop.cli.input_errors

    description = next(s.description for s in STAGES if s.name == stage)
    verb.__doc__ = f"{stage.capitalize()}: {description} (runs earlier stages first if their inputs changed)."
    if stage in DATA_STAGES:
        verb.__doc__ += f"\n\n{EXIT_STATUS_HELP}"
    return verb


def _train_verb() -> Callable[..., None]:
    """The train stage's verb, plus `--launcher` / `--num-processes` (data-parallel training)."""
    stage_verb = _stage_verb("train")

    def verb(
        workspace: WorkspaceOption = None,
        force: Annotated[
            bool, typer.Option("--force", "-f", help="Re-run even if inputs are unchanged.")
        ] = False,
        executor: ExecutorOption = None,
        workers: WorkersOption = None,
        dry_run: DryRunOption = False,
        launcher: Annotated[
            str | None,
            typer.Option(help="Train in several processes with `accelerate` or `torchrun` (CPU: gloo)."),
        ] = None,
        num_processes: Annotated[
            int | None, typer.Option(min=1, help="Processes for --launcher (default 2).")
        ] = None,
    ) -> None:
        from genloop.train.launch import launching

        if launcher is None:
            if num_processes is not None:
                raise GenloopError("--num-processes needs --launcher", hint="add --launcher torchrun")
            return stage_verb(workspace, force, executor, workers, dry_run)
        with launching(launcher, num_processes or 2):
            return stage_verb(workspace, force, executor, workers, dry_run)

    verb.__doc__ = stage_verb.__doc__
    return verb


TINY_SETTINGS = {
    "test_fraction": "0.2\nlimit = 400",
    "epochs": "1",
    "samples_per_class": "20",
    "samples": "1000",
}


def tiny_config(text: str) -> str:
    """The demo template shrunk to a 30-second smoke run (400 digits, one epoch)."""
    for key, value in TINY_SETTINGS.items():
        text = re.sub(rf"^{key} = [^#\n]*", f"{key} = {value}  ", text, count=1, flags=re.MULTILINE)
    return text


def demo(
    directory: Annotated[Path, typer.Argument(help="Workspace folder for the demo.")] = Path("genloop-demo"),
    tiny: Annotated[bool, typer.Option(help="400 digits and 1 epoch: a 30-second smoke run.")] = False,
) -> None:
    """The whole loop on 5,000 real MNIST digits: collect → … → publish, then what to run next."""
    root = directory.resolve()
    if not (root / "genloop.toml").is_file():
        init_workspace(root, "mnist")
        if tiny:
            config = root / "genloop.toml"
            config.write_text(tiny_config(config.read_text(encoding="utf-8")), encoding="utf-8")
        say(f"[green]✓[/green] created the demo workspace {root}")
    else:
        say(f"[cyan]•[/cyan] using the demo workspace {root}")
    ws = Workspace(root)
    catalog = open_catalog(ws.database_url)
    runs = run_pipeline(ws, catalog, report=print_stage)
    content: list[str] = next((r.outputs["content"] for r in runs if r.stage == "generate"), [])
    say("\n[bold]Next[/bold]")
    say(f"  genloop serve -w {directory}              # gallery at http://127.0.0.1:8000: like / dislike")
    say(f"  genloop improve -w {directory}            # fine-tune from the champion on what people liked")
    say(f"  genloop loop --simulate likes-class:7 -w {directory}   # rounds of publish → feedback → improve")
    if content:
        say(f"  genloop lineage {content[0][:12]} -w {directory}   # content → model → run → data → license")
    say(f"  genloop models ls -w {directory}          # versions, aliases, metrics")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "genloop run",
            "genloop run --dry-run",
            "genloop run --until train",
            "genloop run --force train -w my-project",
            "genloop run --executor ray --workers 2",
        )
    )(run)
    for stage in STAGE_ORDER:
        if stage == "generate":
            continue  # its own module: it also generates ad hoc from any model version
        launched = ("genloop train --launcher torchrun --num-processes 2",) if stage == "train" else ()
        app.command(
            name=stage,
            epilog=examples(
                f"genloop {stage}", f"genloop {stage} --dry-run", f"genloop {stage} --force", *launched
            ),
        )(_train_verb() if stage == "train" else _stage_verb(stage))
    app.command(epilog=examples("genloop demo", "genloop demo --tiny", "genloop demo /tmp/digits"))(demo)

"""`genloop tune`: search [train] options with Optuna over the space in [tune]; resumable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genloop.catalog import open_catalog
from genloop.cli.common import DryRunOption, WorkspaceOption, examples, find_workspace
from genloop.cli.run_cmd import print_stage
from genloop.data.datasets import open_dataset_version
from genloop.errors import GenloopError
from genloop.pipeline.runner import run_pipeline
from genloop.progress import say
from genloop.tune.config import read_tune_config, workspace_config

if TYPE_CHECKING:
    from genloop.tune.study import StudyOutcome


def tune_command(
    workspace: WorkspaceOption = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="Trials in all (overrides \\[tune].n_trials).")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Search the \\[tune.space] of genloop.toml: each trial trains a model version (no alias);
    the best values are written to .genloop/tune/STUDY/best.toml and printed as a \\[train] snippet."""
    ws = find_workspace(workspace)
    tune = read_tune_config(ws)
    if n_trials is not None:
        tune = tune.model_copy(update={"n_trials": n_trials})
    config = workspace_config(ws)  # validates the rest of genloop.toml before any work
    try:  # Optuna is an extra: the rest of the CLI works without it
        from genloop.tune.study import run_study, study_name
    except ImportError as exc:
        raise GenloopError(f"genloop tune needs Optuna ({exc})", hint="pip install 'genloop[tune]'") from None
    name = study_name(tune, config.project.name, config.train)
    if dry_run:
        say(f"would run study {name}: up to {tune.n_trials} trials, {tune.direction} {tune.metric}")
        for key, spec in tune.space.items():
            say(f"    {key}: {spec.model_dump(exclude_defaults=True)}")
        return
    catalog = open_catalog(ws.database_url)
    upstream = run_pipeline(ws, catalog, until="annotate", report=print_stage)
    dataset = open_dataset_version(ws, catalog, upstream[-1].outputs["dataset"])
    outcome = run_study(ws, catalog, dataset, tune, config.train, model_name=config.project.name)
    _print_trials(outcome, list(tune.space), tune.metric)
    if outcome.best_file is None:
        say("[yellow]no trial completed yet[/yellow]: run `genloop tune` again to continue the study")
        return
    say(f"[green]✓[/green] best: trial {outcome.best_trial}, {tune.metric} = {outcome.best_value:.6g}")
    say(f"  saved {outcome.best_file} — paste into genloop.toml's \\[train] to use it:")
    typer.echo(outcome.best_file.read_text(encoding="utf-8"), nl=False)


def _print_trials(outcome: StudyOutcome, params: list[str], metric: str) -> None:
    table = Table("trial", "state", *params, metric, "model version", title=f"study {outcome.study}")
    for trial in outcome.trials:
        values = [_cell(trial.params.get(p)) for p in params]
        value = "" if trial.value is None else f"{trial.value:.4g}"
        best = " *" if trial.number == outcome.best_trial else ""
        table.add_row(
            str(trial.number) + best,
            trial.state.name.lower(),
            *values,
            value,
            escape(str(trial.user_attrs.get("model_version", ""))),
        )
    Console(stderr=True).print(table)


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    app.command(
        name="tune",
        epilog=examples(
            "genloop tune",
            "genloop tune --n-trials 30      # continue the study up to 30 trials",
            "genloop tune --dry-run",
        ),
    )(tune_command)

"""`genloop improve`: fine-tune a challenger from the champion on its feedback, with the configured recipe."""

from __future__ import annotations

from typing import Annotated, Any, get_args

import typer
from rich.console import Console
from rich.table import Table

from genloop.catalog import Catalog
from genloop.cli.common import DryRunOption, WorkspaceOption, examples, open_context
from genloop.config import GenloopConfig, ImproveRecipe
from genloop.errors import GenloopError
from genloop.improve.dispatch import ImproveOutcome, improve_model, plan_improvement
from genloop.models.gates import check_gates
from genloop.progress import say

RECIPES = get_args(ImproveRecipe)
COMPARED = (
    ("heldout_elbo", "held-out ELBO (nats/image, higher is better)", "{:.2f}"),
    ("fd", "FD (lower is better)", "{:.3f}"),
    ("conditional_accuracy", "conditional accuracy", "{:.1%}"),
    ("worst_class_accuracy", "worst-class accuracy", "{:.1%}"),
    ("heldout_loss", "held-out loss (nats/token, lower is better)", "{:.3f}"),
    ("bits_per_character", "bits per character", "{:.3f}"),
    ("verbatim_ngram_share", "verbatim n-gram share", "{:.1%}"),
    ("pitch_class_tv", "pitch-class TV distance", "{:.3f}"),
)

RecipeOption = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        "-r",
        help=f"Override \\[improve].recipe: {', '.join(RECIPES)}.",
        show_default=False,
    ),
]


def _with_recipe(config: GenloopConfig, recipe: str | None) -> GenloopConfig:
    if recipe is None:
        return config
    if recipe not in RECIPES:
        raise GenloopError(f"unknown recipe {recipe!r}", hint=f"--recipe takes one of: {', '.join(RECIPES)}")
    return config.model_copy(update={"improve": config.improve.model_copy(update={"recipe": recipe})})


def improve_command(
    workspace: WorkspaceOption = None, recipe: RecipeOption = None, dry_run: DryRunOption = False
) -> None:
    """Turn the champion's feedback into a challenger (recipe: \\[improve] or --recipe), compare, gate."""
    ctx = open_context(workspace)
    config = _with_recipe(ctx.config, recipe)
    name = config.project.name
    if dry_run:
        plan = plan_improvement(ctx.workspace, ctx.catalog, config)
        counts = ", ".join(f"{n} {what}" for what, n in plan.counts.items())
        say(
            f"would run the {plan.recipe} recipe on {name}@champion ({plan.champion}, {plan.family}): "
            f"{plan.feedback_events} feedback events ({counts})"
        )
        return
    with ctx.workspace.lock():
        outcome = improve_model(ctx.workspace, ctx.catalog, config, seed=config.train.seed)
    say(
        f"[green]✓[/green] {outcome.challenger} (alias challenger) from {outcome.champion} by the "
        f"{outcome.recipe} recipe on {outcome.feedback_events} feedback events "
        f"(dataset version {outcome.feedback_dataset})"
    )
    console = Console(stderr=True)
    console.print(_recipe_table(outcome))
    if outcome.champion_metrics and outcome.challenger_metrics:
        console.print(_comparison_table(outcome))
    _report_gates(ctx.catalog, config, outcome, console)


def _recipe_table(outcome: ImproveOutcome) -> Table:
    """The recipe's own numbers: reward before/after and class prior (images), pair margins (text)."""
    table = Table("recipe number", "value", title=f"{outcome.recipe} recipe")
    details = outcome.details
    for key in ("reward_auc", "champion_reward", "challenger_reward", "shaped_records", "liked"):
        if details.get(key) is not None:
            table.add_row(key.replace("_", " "), _number(details[key]))
    if details.get("challenger_prior"):
        prior = ", ".join(f"{label} {p:.0%}" for label, p in details["challenger_prior"].items())
        table.add_row("challenger class prior", prior)
    for phase in ("before", "after"):
        for key, value in (details.get(phase) or {}).items():
            table.add_row(f"{key.replace('_', ' ')} ({phase})", _number(value))
    if details.get("losses"):
        table.add_row("loss (first → last step)", f"{details['losses'][0]:.3f} → {details['losses'][-1]:.3f}")
    if details.get("examples"):
        table.add_row("examples", ", ".join(f"{n} {what}" for what, n in details["examples"].items()))
    if details.get("reused"):
        table.add_row("run", "identical run completed before: its version is reused")
    return table


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _comparison_table(outcome: ImproveOutcome) -> Table:
    champion, challenger = outcome.champion_metrics or {}, outcome.challenger_metrics or {}
    table = Table("metric", outcome.champion + " (champion)", outcome.challenger + " (challenger)")
    for key, title, fmt in COMPARED:
        if isinstance(champion.get(key), int | float) and isinstance(challenger.get(key), int | float):
            table.add_row(title, fmt.format(champion[key]), fmt.format(challenger[key]))
    return table


def _report_gates(catalog: Catalog, config: GenloopConfig, outcome: ImproveOutcome, console: Console) -> None:
    gates = check_gates(catalog, outcome.challenger, config.gates, champion_id=outcome.champion)
    if not gates:
        say("no [[gates]] in genloop.toml guard `champion`; promotion is a person's call")
        say(f"promote it with: genloop models promote {outcome.challenger}")
        return
    gate_table = Table("gate", "rule", "result", "detail", title="promotion gates (genloop.toml [[gates]])")
    for gate in gates:
        verdict = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        gate_table.add_row(gate.metric, gate.rule, verdict, gate.message)
    console.print(gate_table)
    if all(gate.passed for gate in gates):
        say(f"all {len(gates)} gates pass; promote it with: genloop models promote {outcome.challenger}")
    else:
        failed = sum(not gate.passed for gate in gates)
        say(
            f"[yellow]{failed} of {len(gates)} gates fail[/yellow]: "
            f"`genloop models promote {outcome.challenger}` will refuse "
            "(override with --force and a --reason)"
        )


def register(app: typer.Typer) -> None:
    app.command(
        name="improve",
        epilog=examples(
            "genloop improve",
            "genloop improve --dry-run",
            "genloop improve --recipe dpo",
            "genloop improve --recipe rejection-sampling -w genloop-demo",
        ),
    )(improve_command)

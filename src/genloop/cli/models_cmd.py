"""`genloop models ls | show | promote`: model versions, their aliases, lineage and evaluations."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import Evaluation, ModelVersion, Run, RunDataset
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError
from genloop.models.versions import (
    CHAMPION,
    ModelVersionInfo,
    list_model_versions,
    resolve_model_version,
    set_alias,
)
from genloop.workspace import Workspace

models_app = typer.Typer(
    name="models",
    help="List and inspect trained model versions (aliases, lineage, evaluations).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
KEY_METRICS = ("heldout_elbo", "conditional_accuracy", "worst_class_accuracy")
METRIC_HEADERS = ("ELBO", "cond. acc.", "worst class")  # short: the table must fit 80 columns
METRICS_CAPTION = (
    "ELBO: held-out nats per image, higher is better · cond. acc.: share of samples a "
    "real-data classifier assigns to the requested class (mean, worst class)"
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    """Add the `models` group to the `genloop` app."""
    app.add_typer(models_app)


def _format(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if "accuracy" in key else f"{value:.1f}"
    return "" if value is None else str(value)


def _latest_evaluations(catalog: Catalog) -> dict[str, dict[str, Any]]:
    with catalog.session() as session:
        rows = session.scalars(select(Evaluation).order_by(Evaluation.created_at, Evaluation.id)).all()
        return {row.model_version_id: row.metrics for row in rows}  # later rows overwrite earlier ones


@models_app.command(
    "ls",
    epilog=examples("genloop models ls", "genloop models ls digits", "genloop models ls --json -w demo"),
)
def ls(
    name: Annotated[
        str | None, typer.Argument(help="Only this model's versions.", show_default=False)
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List model versions: family, aliases, parent, feedback, latest evaluation, created."""
    ctx = open_context(workspace)
    versions = list_model_versions(ctx.catalog, name)
    evaluations = _latest_evaluations(ctx.catalog)
    if as_json:
        rows = [_version_json(v, evaluations.get(v.id)) for v in versions]
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not versions:
        Console(stderr=True).print("no model versions yet; train one with `genloop train` (or `genloop run`)")
        return
    table = Table(
        Column("id", no_wrap=True),
        "family",
        "aliases",
        "parent",
        "feedback",
        *METRIC_HEADERS,
        Column("created", no_wrap=True),
        caption="latest evaluation · " + METRICS_CAPTION,
        box=box.SIMPLE_HEAD,
    )
    for v in versions:
        metrics = evaluations.get(v.id) or {}
        table.add_row(
            v.id,
            v.family,
            ", ".join(v.aliases),
            v.parent_id or "",
            str(v.feedback_count),
            *(_format(key, metrics.get(key)) for key in KEY_METRICS),
            v.created_at.strftime("%m-%d %H:%M"),
        )
    Console().print(table)


def _version_json(v: ModelVersionInfo, metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "version": v.version,
        "family": v.family,
        "aliases": list(v.aliases),
        "parent_id": v.parent_id,
        "run_id": v.run_id,
        "feedback_count": v.feedback_count,
        "path": v.path,
        "created_at": v.created_at.isoformat(),
        "latest_evaluation": metrics,
    }


@models_app.command(
    "show",
    epilog=examples(
        "genloop models show digits",
        "genloop models show digits-v2",
        "genloop models show digits@challenger --json",
    ),
)
def show(
    ref: Annotated[
        str, typer.Argument(help="A version (digits-v2), an alias (digits@champion) or a model name.")
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one model version: config, lineage (parents, run, datasets) and every evaluation."""
    ctx = open_context(workspace)
    details = _details(ctx.workspace, ctx.catalog, resolve_model_version(ctx.catalog, ref))
    if as_json:
        typer.echo(json.dumps(details, indent=2, default=str))
        return
    console = Console()
    aliases = ", ".join(details["aliases"]) or "-"
    console.print(f"[bold]{details['id']}[/bold]  family {details['family']}  aliases: {aliases}")
    console.print(f"path      {details['path']}")
    console.print(f"lineage   {' ← '.join(details['lineage'])}")
    console.print(f"run       {details['run_id']} ({details['run_status']})")
    for dataset in details["datasets"]:
        console.print(f"dataset   {dataset['id']} ({dataset['role']})")
    console.print(f"feedback  {details['feedback_count']} items")
    console.print("config    " + json.dumps(details["config"], sort_keys=True))
    table = Table(
        "evaluated",
        "dataset",
        *METRIC_HEADERS,
        "classifier acc.",
        title="evaluations",
        caption=METRICS_CAPTION,
    )
    for ev in details["evaluations"]:
        metrics = ev["metrics"]
        table.add_row(
            ev["created_at"][:16].replace("T", " "),
            ev["dataset_version_id"],
            *(_format(key, metrics.get(key)) for key in KEY_METRICS),
            _format("accuracy", metrics.get("classifier_test_accuracy")),
        )
    console.print(table if details["evaluations"] else "no evaluations yet: `genloop evaluate`")


@models_app.command(
    "promote",
    epilog=examples(
        "genloop models promote digits-v2", "genloop models promote digits-v3 --alias challenger"
    ),
)
def promote(
    ref: Annotated[
        str, typer.Argument(help="The version to promote (digits-v2, or an alias: digits@challenger).")
    ],
    alias: Annotated[str, typer.Option("--alias", help="The alias to point at it.")] = CHAMPION,
    workspace: WorkspaceOption = None,
) -> None:
    """Point an alias (default: champion) at a model version; `genloop generate` uses the champion."""
    ctx = open_context(workspace)
    version_id = resolve_model_version(ctx.catalog, ref)
    name = next(v.name for v in list_model_versions(ctx.catalog) if v.id == version_id)
    try:
        previous: str | None = resolve_model_version(ctx.catalog, f"{name}@{alias}")
    except GenloopError:
        previous = None
    set_alias(ctx.catalog, name, alias, version_id)
    was = f" (was {previous})" if previous and previous != version_id else ""
    typer.echo(f"{name}@{alias} → {version_id}{was}")


def _details(workspace: Workspace, catalog: Catalog, version_id: str) -> dict[str, Any]:
    info = next(v for v in list_model_versions(catalog) if v.id == version_id)
    with catalog.session() as session:
        lineage, parent = [version_id], info.parent_id
        while parent is not None and parent not in lineage:  # parent chain, newest first
            lineage.append(parent)
            row = session.get(ModelVersion, parent)
            parent = row.parent_id if row else None
        run = session.get(Run, info.run_id)
        datasets = session.scalars(select(RunDataset).where(RunDataset.run_id == info.run_id)).all()
        evaluations = session.scalars(
            select(Evaluation).where(Evaluation.model_version_id == version_id).order_by(Evaluation.id)
        ).all()
        config_path = workspace.artifact(info.path) / "config.json"
        return {
            **_version_json(info, evaluations[-1].metrics if evaluations else None),
            "lineage": lineage,
            "run_status": run.status if run else "unknown",
            "datasets": [{"id": d.dataset_version_id, "role": d.role} for d in datasets],
            "config": json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {},
            "evaluations": [
                {
                    "dataset_version_id": e.dataset_version_id,
                    "metrics": e.metrics,
                    "created_at": e.created_at.isoformat(),
                }
                for e in evaluations
            ],
        }

"""`genloop models ls | show | promote | rollback | archive | history`: versions, aliases, gates.

`promote` checks the `[[gates]]` of genloop.toml (see `genloop.models.gates`) and refuses
with every failing rule and its numbers; `--force` overrides and is recorded. Each alias
move lands in the alias history (`history`), which `rollback` walks back.
"""

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
from genloop.models.gates import GateResult
from genloop.models.versions import (
    CHAMPION,
    AliasHistoryEntry,
    ModelVersionInfo,
    alias_history,
    archive,
    list_model_versions,
    promote,
    resolve_model_version,
    rollback,
)
from genloop.workspace import Workspace

models_app = typer.Typer(
    name="models",
    help="List, inspect, promote (through the gates), roll back and archive model versions.",
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
AliasOption = Annotated[str, typer.Option("--alias", help="The alias to move.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (kept in the alias history).", show_default=False)
]


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
    epilog=examples(
        "genloop models ls", "genloop models ls digits --all", "genloop models ls --json -w demo"
    ),
)
def ls(
    name: Annotated[
        str | None, typer.Argument(help="Only this model's versions.", show_default=False)
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include archived versions.")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List model versions: family, aliases, parent, feedback, latest evaluation, created."""
    ctx = open_context(workspace)
    every = list_model_versions(ctx.catalog, name)
    versions = [v for v in every if show_all or v.archived_at is None]
    evaluations = _latest_evaluations(ctx.catalog)
    if as_json:
        rows = [_version_json(v, evaluations.get(v.id)) for v in versions]
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    hidden = len(every) - len(versions)
    note = f"{hidden} archived version(s) hidden: `genloop models ls --all` shows them"
    if not versions:
        empty = "no model versions yet; train one with `genloop train` (or `genloop run`)"
        Console(stderr=True).print(note if hidden else empty)
        return
    table = Table(
        Column("id", no_wrap=True),
        "family",
        "aliases",
        "parent",
        "feedback",
        *METRIC_HEADERS,
        Column("created", no_wrap=True),
        caption="latest evaluation · " + METRICS_CAPTION + (f" · {note}" if hidden else ""),
        box=box.SIMPLE_HEAD,
    )
    for v in versions:
        metrics = evaluations.get(v.id) or {}
        table.add_row(
            v.id + (" (archived)" if v.archived_at else ""),
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
        "archived_at": v.archived_at.isoformat() if v.archived_at else None,
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
    if details["archived_at"]:
        when = details["archived_at"][:16].replace("T", " ")
        console.print(f"archived  {when} (`genloop models archive {details['id']} --restore` undoes it)")
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
        "genloop models promote digits-v2",
        "genloop models promote digits-v3 --alias challenger",
        'genloop models promote digits-v3 --force --reason "FD regressed on purpose: new style"',
    ),
)
def promote_cmd(
    ref: Annotated[
        str, typer.Argument(help="The version to promote (digits-v2, or an alias: digits@challenger).")
    ],
    alias: AliasOption = CHAMPION,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if gates fail (recorded as forced).")
    ] = False,
    reason: ReasonOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Point an alias (default: champion) at a version once it passes the [[gates]] of genloop.toml.

    Each gate compares a metric of the version's latest evaluation with a threshold or with the
    champion's; a failing gate refuses the promotion and names the rule and the numbers.
    `genloop generate` uses the champion.
    """
    ctx = open_context(workspace)
    move = promote(
        ctx.catalog, ref, alias=alias, gates=ctx.workspace.config.gates, force=force, reason=reason
    )
    for result in move.gates:
        typer.echo(f"{_mark(result)} {result.message}")
    target = f"{move.name}@{alias}"
    if not move.moved:
        typer.echo(f"{target} is already {move.version_id}")
        return
    was = f" (was {move.previous_id})" if move.previous_id else ""
    forced = " [forced past failing gates]" if move.forced else ""
    typer.echo(f"{target} → {move.version_id}{was}{forced}")


def _mark(result: GateResult) -> str:
    return "✓" if result.passed else "✗"


@models_app.command(
    "rollback",
    epilog=examples("genloop models rollback digits", "genloop models rollback digits --alias challenger"),
)
def rollback_cmd(
    name: Annotated[str, typer.Argument(help="The model (digits) or NAME@ALIAS (digits@champion).")],
    alias: AliasOption = CHAMPION,
    reason: ReasonOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Move an alias back to the version it had before its last move (repeat to go further back)."""
    ctx = open_context(workspace)
    if "@" in name:
        name, _, alias = name.partition("@")
    move = rollback(ctx.catalog, name, alias=alias, reason=reason)
    typer.echo(f"{name}@{alias} → {move.version_id} (was {move.previous_id})")


@models_app.command(
    "archive",
    epilog=examples("genloop models archive digits-v1", "genloop models archive digits-v1 --restore"),
)
def archive_cmd(
    ref: Annotated[str, typer.Argument(help="The version to archive (digits-v1).")],
    restore: Annotated[bool, typer.Option("--restore", help="Un-archive it instead.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Retire a version: hidden from `ls` (unless --all), never promoted; its files and lineage stay."""
    ctx = open_context(workspace)
    version_id = archive(ctx.catalog, ref, restore=restore)
    typer.echo(f"{version_id} {'restored' if restore else 'archived'}")


@models_app.command(
    "history",
    epilog=examples(
        "genloop models history digits",
        "genloop models history digits --alias champion --json",
    ),
)
def history_cmd(
    name: Annotated[str, typer.Argument(help="The model (digits).")],
    alias: Annotated[
        str | None, typer.Option("--alias", help="Only this alias's moves.", show_default=False)
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every alias move of a model, oldest first: when, who, from → to, how (promote, rollback, ...)."""
    ctx = open_context(workspace)
    entries = alias_history(ctx.catalog, name, alias)
    if as_json:
        typer.echo(json.dumps([_history_json(e) for e in entries], indent=2, default=str))
        return
    if not entries:
        Console(stderr=True).print(f"no alias moves recorded for {name!r}")
        return
    table = Table(
        Column("when", no_wrap=True),
        "alias",
        "from",
        "to",
        "action",
        "by",
        "reason",
        box=box.SIMPLE_HEAD,
        caption="forced: promoted past failing gates",
    )
    for e in entries:
        action = e.action + (" (forced)" if e.forced else "")
        table.add_row(
            e.created_at.strftime("%Y-%m-%d %H:%M"),
            e.alias,
            e.from_version_id or "-",
            e.to_version_id,
            action,
            e.actor,
            e.reason or "",
        )
    Console().print(table)


def _history_json(e: AliasHistoryEntry) -> dict[str, Any]:
    return {
        "name": e.name,
        "alias": e.alias,
        "from": e.from_version_id,
        "to": e.to_version_id,
        "action": e.action,
        "actor": e.actor,
        "forced": e.forced,
        "reason": e.reason,
        "gates": e.gates,
        "created_at": e.created_at.isoformat(),
    }


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

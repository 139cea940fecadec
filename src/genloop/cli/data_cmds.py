"""`genloop data`: list dataset versions and show one (counts, sources, cleaning report)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.data.report import newest_version, write_report
from genloop.errors import NotFoundError

data_app = typer.Typer(
    name="data",
    help="Dataset versions: list them, show one with its counts, sources and cleaning report.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples("genloop data ls", "genloop data show 3f2a9c", "genloop data report"),
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _console() -> Console:
    # Piped output (`| less`, `| grep`) gets wide lines rather than cells wrapped at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _sources(manifest: dict[str, Any]) -> str:
    return ", ".join(f"{s['source']} ({s['license']})" for s in manifest.get("sources", []))


def _label_count(manifest: dict[str, Any]) -> int:
    return sum(1 for label in manifest.get("labels", {}) if label != "(none)")


def _find_version(catalog: Catalog, version: str) -> DatasetVersion:
    """The dataset version whose id is `version` or starts with it (a unique prefix)."""
    with catalog.session() as session:
        exact = session.get(DatasetVersion, version)
        if exact is not None:
            return exact
        matches = session.scalars(select(DatasetVersion).where(DatasetVersion.id.startswith(version))).all()
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFoundError(
            f"no dataset version {version!r}", hint="`genloop data ls` lists the dataset versions"
        )
    ids = ", ".join(sorted(m.id for m in matches))
    raise NotFoundError(
        f"{version!r} matches {len(matches)} dataset versions: {ids}", hint="give more of the id"
    )


@data_app.command(
    "ls",
    epilog=examples(
        "genloop data ls", "genloop data ls --name digits --stage clean", "genloop data ls --json"
    ),
)
def list_versions(
    workspace: WorkspaceOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Only this dataset name.")] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only this stage (collect, clean, ...).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List dataset versions, newest first."""
    ctx = open_context(workspace)
    with ctx.catalog.session() as session:
        query = select(DatasetVersion).order_by(DatasetVersion.created_at.desc())
        if name:
            query = query.where(DatasetVersion.name == name)
        if stage:
            query = query.where(DatasetVersion.stage == stage)
        rows = session.scalars(query).all()
    if as_json:
        typer.echo(json.dumps([_row_summary(row) for row in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        _console().print("no dataset versions yet: run `genloop collect` (or `genloop run`)")
        return
    table = Table("id", "name", "stage", "parent", "records", "labels", "sources (licenses)", "created")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            row.stage,
            row.parent_id or "-",
            str(row.record_count),
            str(_label_count(row.manifest)),
            _sources(row.manifest),
            f"{row.created_at:%Y-%m-%d %H:%M}",
        )
    _console().print(table)


def _row_summary(row: DatasetVersion) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "stage": row.stage,
        "parent": row.parent_id,
        "records": row.record_count,
        "labels": _label_count(row.manifest),
        "sources": row.manifest.get("sources", []),
        "created": row.created_at.isoformat(),
        "path": row.path,
    }


def _report_tables(report: dict[str, Any]) -> list[Table]:
    dropped = report.get("dropped", {})
    reasons = Table("dropped because", "count", "examples", title=f"kept {report.get('kept', 0)}")
    for kind, counted in dropped.items():
        reasons.add_row(kind, str(counted["count"]), "\n".join(counted["examples"]))
    steps = Table("step", "seen", "kept", "dropped", title="steps")
    for step in report.get("steps", []):
        steps.add_row(step["name"], str(step["seen"]), str(step["kept"]), str(sum(step["dropped"].values())))
    return [reasons, steps] if dropped else [steps]


@data_app.command("show", epilog=examples("genloop data show 3f2a9c", "genloop data show 3f2a9c --json"))
def show_version(
    version: Annotated[str, typer.Argument(help="Dataset version id (or a unique prefix of it).")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one dataset version: counts per split and label, sources, licenses, what was dropped and why."""
    row = _find_version(open_context(workspace).catalog, version)
    manifest = row.manifest
    if as_json:
        typer.echo(json.dumps({**_row_summary(row), "manifest": manifest}, indent=2, ensure_ascii=False))
        return
    console = _console()
    console.print(f"[bold]{row.id}[/bold]  {row.name} · stage {row.stage} · {row.record_count} records")
    splits = ", ".join(f"{split} {n}" for split, n in manifest.get("splits", {}).items())
    labels = ", ".join(f"{label}: {n}" for label, n in manifest.get("labels", {}).items())
    for key, value in (
        ("parent", row.parent_id or "-"),
        ("created", f"{row.created_at:%Y-%m-%d %H:%M:%S}"),
        ("path", row.path),
        ("splits", splits),
        ("classes", ", ".join(manifest.get("classes") or []) or "-"),
        ("labels", labels),
        ("sources", _sources(manifest)),
    ):
        console.print(f"  {key:<8} {value}")
    report = manifest.get("report") or {}
    if report:
        dropped = sum(counted["count"] for counted in report.get("dropped", {}).values())
        errors = (report.get("input_errors") or {}).get("count", 0)
        broken = (
            f" ({errors} for input errors: {', '.join(report['input_errors']['steps'])})" if errors else ""
        )
        console.print(f"  {row.stage:<8} kept {report.get('kept', 0)}, dropped {dropped}{broken}")
        for table in _report_tables(report):
            console.print(table)
    for problem in manifest.get("problems", []):
        console.print(f"  [yellow]problem[/yellow] {problem}")


@data_app.command(
    "report",
    epilog=examples(
        "genloop data report",
        "genloop data report 3f2a9c -o cleaning.html",
        "genloop data report -w ~/shop-photos",
    ),
)
def report_version(
    version: Annotated[
        str | None,
        typer.Argument(
            help="Clean or annotate version id (or a unique prefix). Default: the newest clean one."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="HTML file to write. Default: reports/data-VERSION.html in the workspace."
        ),
    ] = None,
) -> None:
    """Write an HTML cleaning report: per-step counts, drops per reason with examples, PII, labels, licenses.

    Thumbnails of dropped images appear when the version was cleaned with
    `\\[clean] write_rejects = true`.
    """
    ctx = open_context(workspace)
    version_id = _find_version(ctx.catalog, version).id if version else newest_version(ctx.catalog)
    target = output or ctx.workspace.root / "reports" / f"data-{version_id}.html"
    written = write_report(ctx.workspace, ctx.catalog, version_id, target)
    _console().print(f"wrote {written}")


def register(app: typer.Typer) -> None:
    """Add the `data` group to the `genloop` app."""
    app.add_typer(data_app)

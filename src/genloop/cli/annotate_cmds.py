"""`genloop annotations`: the human annotation queue — see it, label it, measure agreement, exchange files."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genloop.catalog import Catalog
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.cli.data_inspect_cmds import find_version_id
from genloop.data.annotate.agreement import interpretation
from genloop.data.annotate.apply import apply_annotations
from genloop.data.annotate.interchange import export_tasks, import_labels
from genloop.data.annotate.queue import (
    TaskView,
    agreement,
    enqueue,
    get_task,
    next_task,
    queue_counts,
    submit,
)
from genloop.data.datasets import open_dataset_version
from genloop.errors import DataError
from genloop.workspace import Workspace

annotations_app = typer.Typer(
    name="annotations",
    help="The human annotation queue: label records people must decide, check agreement, import/export.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples(
        "genloop annotations queue",
        "genloop annotations next --annotator ana",
        "genloop annotations label 12 refund --annotator ana",
        "genloop annotations agreement",
    ),
)

VersionOption = Annotated[
    str | None,
    typer.Option("--version", "-v", help="Dataset version id (or unique prefix) the tasks belong to."),
]
AnnotatorOption = Annotated[
    str,
    typer.Option("--annotator", "-a", envvar="GENLOOP_ANNOTATOR", help="Your name (or GENLOOP_ANNOTATOR)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _version(catalog: Catalog, version: str | None) -> str | None:
    return find_version_id(catalog, version) if version else None


def _single_queued_version(catalog: Catalog, version: str | None) -> str:
    """The version named, else the only one with tasks (an error when there are several or none)."""
    if version:
        return find_version_id(catalog, version)
    queued = [c.dataset_version_id for c in queue_counts(catalog)]
    if len(queued) == 1:
        return queued[0]
    raise DataError(
        "no annotation tasks yet" if not queued else f"tasks exist for {len(queued)} dataset versions",
        hint="pass --version V (`genloop annotations queue` lists them)",
    )


@annotations_app.command(
    "queue",
    epilog=examples(
        "genloop annotations queue",
        "genloop annotations queue --version 3f2a9c --add-unlabelled --annotators 2",
    ),
)
def show_queue(
    workspace: WorkspaceOption = None,
    version: VersionOption = None,
    add_unlabelled: Annotated[
        bool, typer.Option("--add-unlabelled", help="Queue every unlabelled record of --version.")
    ] = False,
    annotators: Annotated[int, typer.Option("--annotators", min=1, help="People per task (new tasks).")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Show open and done tasks per dataset version; optionally queue a version's unlabelled records."""
    ctx = open_context(workspace)
    version_id = _version(ctx.catalog, version)
    if add_unlabelled:
        if version_id is None:
            raise DataError("--add-unlabelled needs --version V", hint="`genloop data ls` lists the versions")
        dataset = open_dataset_version(ctx.workspace, ctx.catalog, version_id)
        unlabelled = ((r.id, None) for r in dataset.iter_records() if not r.label)
        created = enqueue(ctx.catalog, version_id, unlabelled, annotators=annotators)
        _console().print(f"queued {created} new tasks for dataset version {version_id}")
    counts = [
        c for c in queue_counts(ctx.catalog) if version_id is None or c.dataset_version_id == version_id
    ]
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in counts], indent=2))
        return
    if not counts:
        _console().print(
            "the annotation queue is empty: `genloop annotate` with auto_label queues unsure records"
        )
        return
    table = Table("dataset version", "open", "done", "annotations")
    for c in counts:
        table.add_row(c.dataset_version_id, str(c.open), str(c.done), str(c.annotations))
    _console().print(table)


def _print_task(task: TaskView, text: str | None) -> None:
    console = _console()
    console.print(f"[bold]task {task.id}[/bold]  record {task.record_id[:12]} of {task.dataset_version_id}")
    if task.suggested_label:
        console.print(f"  suggested  {task.suggested_label} (confidence {task.suggested_confidence:.2f})")
    if task.labels:
        console.print("  labels     " + ", ".join(f"{who}: {label}" for who, label in task.labels.items()))
    if text is not None:
        console.print(f"  content    {text}")
    console.print(f"  label it:  genloop annotations label {task.id} LABEL --annotator NAME")


def _content(workspace: Workspace, catalog: Catalog, task: TaskView) -> str | None:
    """What the annotator looks at: the text, or where the image/music record is."""
    dataset = open_dataset_version(workspace, catalog, task.dataset_version_id)
    for record in dataset.iter_records():
        if record.id == task.record_id:
            if record.modality == "text":
                return record.payload.decode("utf-8", errors="replace")
            return f"{record.modality} {record.where}"
    return None


@annotations_app.command(
    "next",
    epilog=examples("genloop annotations next --annotator ana", "genloop annotations next -a ana --json"),
)
def next_command(
    annotator: AnnotatorOption,
    workspace: WorkspaceOption = None,
    version: VersionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the next task you have not labelled yet (its content and the auto-label suggestion)."""
    ctx = open_context(workspace)
    task = next_task(ctx.catalog, annotator, dataset_version_id=_version(ctx.catalog, version))
    if task is None:
        if as_json:
            typer.echo("null")
        else:
            _console().print(f"nothing left for {annotator}: every open task has your label")
        return
    content = _content(ctx.workspace, ctx.catalog, task)
    if as_json:
        typer.echo(json.dumps({**asdict(task), "content": content}, ensure_ascii=False, indent=2))
        return
    _print_task(task, content)


@annotations_app.command(
    "label",
    epilog=examples(
        "genloop annotations label 12 refund --annotator ana",
        "GENLOOP_ANNOTATOR=bo genloop annotations label 12 refund",
    ),
)
def label_command(
    task_id: Annotated[int, typer.Argument(help="Task id (from `genloop annotations next`).")],
    label: Annotated[str, typer.Argument(help="Your label for the record.")],
    annotator: AnnotatorOption,
    workspace: WorkspaceOption = None,
) -> None:
    """Label one task (labelling it again replaces your earlier label)."""
    ctx = open_context(workspace)
    get_task(ctx.catalog, task_id)  # a clear "no annotation task N" before anything else
    task = submit(ctx.catalog, task_id, annotator, label)
    _console().print(
        f"task {task.id}: {annotator} → {label} "
        f"({len(task.labels)}/{task.annotators_required} labels, {task.status})"
    )


@annotations_app.command(
    "agreement",
    epilog=examples("genloop annotations agreement", "genloop annotations agreement --version 3f2a9c --json"),
)
def agreement_command(
    workspace: WorkspaceOption = None, version: VersionOption = None, as_json: JsonOption = False
) -> None:
    """Inter-annotator agreement: Cohen's kappa per pair of people, Fleiss' kappa over all."""
    ctx = open_context(workspace)
    report = agreement(ctx.catalog, dataset_version_id=_version(ctx.catalog, version))
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
        return
    console = _console()
    if report.items == 0:
        console.print("no task has two labels yet: agreement needs 2+ annotators per task (--annotators 2)")
        return
    if report.fleiss is not None:
        console.print(
            f"Fleiss' κ = {report.fleiss:.3f} ({interpretation(report.fleiss)}) over {report.fleiss_items} "
            f"items with {report.raters_per_item} labels each"
        )
    table = Table("annotator A", "annotator B", "common items", "Cohen's κ", "agreement")
    for pair in report.pairs:
        table.add_row(
            pair.annotator_a,
            pair.annotator_b,
            str(pair.items),
            f"{pair.kappa:.3f}",
            interpretation(pair.kappa),
        )
    console.print(table)


@annotations_app.command(
    "export",
    epilog=examples(
        "genloop annotations export --format jsonl -o tasks.jsonl",
        "genloop annotations export --format label-studio -o tasks.json --version 3f2a9c --status open",
    ),
)
def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or label-studio.")] = "jsonl",
    status: Annotated[str | None, typer.Option("--status", help="Only open or done tasks.")] = None,
    workspace: WorkspaceOption = None,
    version: VersionOption = None,
) -> None:
    """Write the tasks of a dataset version for another tool (JSONL or Label Studio JSON)."""
    ctx = open_context(workspace)
    version_id = _single_queued_version(ctx.catalog, version)
    count = export_tasks(ctx.workspace, ctx.catalog, version_id, output, fmt=fmt, status=status)
    _console().print(f"wrote {count} tasks of {version_id} to {output} ({fmt})")


@annotations_app.command(
    "import",
    epilog=examples(
        "genloop annotations import labelled.jsonl --annotator ana",
        "genloop annotations import label-studio-export.json --version 3f2a9c",
    ),
)
def import_command(
    file: Annotated[Path, typer.Argument(help="A JSONL or Label Studio JSON file with labels.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="auto (by extension), jsonl or label-studio.")
    ] = "auto",
    annotator: Annotated[
        str, typer.Option("--annotator", "-a", help="Name for labels that do not say who gave them.")
    ] = "import",
    workspace: WorkspaceOption = None,
    version: VersionOption = None,
) -> None:
    """Import labels: each becomes an annotation of its record's task (queued first with --version)."""
    ctx = open_context(workspace)
    result = import_labels(
        ctx.catalog,
        file,
        workspace=ctx.workspace,
        dataset_version_id=_version(ctx.catalog, version),
        annotator=annotator,
        fmt=fmt,
    )
    _console().print(
        f"imported {result.labels} labels ({result.tasks_created} new tasks, "
        f"{result.skipped_without_label} entries without a label)"
    )


@annotations_app.command(
    "apply", epilog=examples("genloop annotations apply", "genloop annotations apply --version 3f2a9c")
)
def apply_command(workspace: WorkspaceOption = None, version: VersionOption = None) -> None:
    """Write a new annotated dataset version with the majority human labels merged in."""
    ctx = open_context(workspace)
    result = apply_annotations(ctx.workspace, ctx.catalog, _single_queued_version(ctx.catalog, version))
    _console().print(
        f"dataset version {result.dataset.id}: {result.applied} human labels applied on top of "
        f"{result.base_id} ({len(result.ties)} tied, {result.open_tasks} tasks still open)"
    )


def register(app: typer.Typer) -> None:
    """Add the `annotations` group to the `genloop` app."""
    app.add_typer(annotations_app)

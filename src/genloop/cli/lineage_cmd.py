"""`genloop lineage ID`: down to the data and licenses, up to publications and feedback.

The JSON (`--json`) is the document genloop.catalog.lineage.lineage returns; its keys
are listed in that module's docstring. The tree printed by default shows the same.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from genloop.catalog.lineage import EVENTS_LIMIT
from genloop.catalog.lineage import lineage as build_lineage
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError


def _add_model(tree: Tree, model: dict[str, Any]) -> None:
    node = tree.add(
        f"[bold]model version[/bold] {model['id']} "
        f"({model['family']}, feedback events: {model['feedback_count']})"
    )
    run = model.get("run")
    if run:
        run_node = node.add(f"[bold]run[/bold] {run['id']} ({run['status']}, {run['epochs_done']} epochs)")
        for dataset in run["datasets"]:
            _add_chain(run_node, dataset["chain"], dataset["role"])
    if model.get("parent"):
        _add_model(node.add("[dim]fine-tuned from[/dim]"), model["parent"])


def _add_chain(parent: Tree, chain: list[dict[str, Any]], role: str | None) -> None:
    for i, version in enumerate(chain):
        tag = f" \\[{escape(role)}]" if role and i == 0 else ""
        parent = parent.add(
            f"[bold]dataset version[/bold] {version['id']}{tag} "
            f"({escape(version['name'])}, {version['stage']}, {version['records']:,} records)"
        )
    for source in chain[-1]["sources"] if chain else []:
        parent.add(
            f"[bold]source[/bold] {escape(source['source'])}  [bold]license[/bold] "
            f"{escape(source['license'])} ({source['records']:,} records)"
        )


def _counts(feedback: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in feedback.items()) or "none"


def _add_down(tree: Tree, down: dict[str, Any]) -> None:
    node = tree.add("[bold cyan]made from[/bold cyan]")
    if down["content"]:
        content = down["content"]
        node.add(f"[dim]file[/dim] {escape(content['path'])}  [dim]seed[/dim] {content['seed']}")
    if down["model_version"]:
        _add_model(node, down["model_version"])
    if down["dataset_chain"]:
        _add_chain(node, down["dataset_chain"], None)
    node.add(f"[bold]licenses[/bold] {escape(', '.join(down['licenses']) or 'none recorded')}")


def _model_label(model: dict[str, Any]) -> str:
    aliases = f" @{', @'.join(model['aliases'])}" if model["aliases"] else ""
    return (
        f"[bold]model version[/bold] {model['id']}{aliases} ({model['family']}): "
        f"{model['content_items']:,} content items, {model['publications']:,} publications, "
        f"feedback {_counts(model['feedback'])}"
    )


def _add_up(tree: Tree, up: dict[str, Any]) -> None:
    node = tree.add("[bold magenta]used by[/bold magenta]")
    models = {m["id"]: m for m in up["model_versions"]}
    shown: set[str] = set()

    def add_model(parent: Tree, model_id: str) -> None:
        if model_id in shown or model_id not in models:
            parent.add(f"[bold]model version[/bold] {model_id} [dim](shown above)[/dim]")
            return
        shown.add(model_id)
        branch = parent.add(_model_label(models[model_id]))
        for child in (m for m in up["model_versions"] if m["parent_id"] == model_id):
            add_model(branch.add("[dim]fine-tuned into[/dim]"), child["id"])

    datasets = {d["id"]: d for d in up["dataset_versions"]}

    def add_dataset(parent: Tree, dataset: dict[str, Any]) -> None:
        branch = parent.add(
            f"[bold]dataset version[/bold] {dataset['id']} "
            f"({escape(dataset['name'])}, {dataset['stage']}, {dataset['records']:,} records)"
        )
        for run in (r for r in up["runs"] if r["dataset_version_id"] == dataset["id"]):
            run_node = branch.add(
                f"[bold]run[/bold] {run['id']} \\[{escape(run['role'] or '')}] ({run['status']})"
            )
            for model in (m for m in up["model_versions"] if m["run_id"] == run["id"]):
                add_model(run_node, model["id"])
        for child in (d for d in up["dataset_versions"] if d["parent_id"] == dataset["id"]):
            add_dataset(branch, child)

    roots = [d for d in up["dataset_versions"] if d["parent_id"] not in datasets]
    for dataset in roots:
        add_dataset(node, dataset)
    for model in up["model_versions"]:  # a model subject, or versions reached only by fine-tuning
        if model["id"] not in shown and model["parent_id"] not in models:
            add_model(node, model["id"])
    if up["content"]:
        for publication in up["content"]["publications"]:
            node.add(
                f"[bold]publication[/bold] {publication['id']} on {escape(publication['channel'])} "
                f"({publication['published_at'][:19]}): feedback {_counts(publication['feedback'])}"
            )
    totals = up["totals"]
    node.add(
        f"[bold]in all[/bold] {totals['content_items']:,} content items, {totals['publications']:,} "
        f"publications, {totals['feedback_events']:,} feedback events ({_counts(totals['feedback'])})"
    )
    if up["events"] is not None:
        events = node.add(f"[bold]feedback events[/bold] ({len(up['events']):,} listed)")
        for event in up["events"]:
            events.add(
                f"#{event['id']} {escape(event['kind'])} by {escape(event['viewer_id'])} on "
                f"{event['publication_id']} ({event['created_at'][:19]})"
            )
        if up["events_truncated"]:
            events.add(f"[dim]… only the first {EVENTS_LIMIT:,}; --json has the same cap[/dim]")


def _title(found: dict[str, Any]) -> str:
    subject = found["subject"]
    kind = subject["kind"].replace("_", " ")
    content = (found.get("down") or {}).get("content")
    extra = f" ({content['modality']}, {escape(json.dumps(content['condition']))})" if content else ""
    return f"[bold]{kind}[/bold] {subject['id']}{extra}"


def lineage(
    ref: Annotated[
        str,
        typer.Argument(
            help="A content id, model version (digits-v2, digits@champion) or dataset version id; "
            "a unique prefix of 4+ characters works too.",
            metavar="ID",
        ),
    ],
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage as one JSON document.")] = False,
    direction: Annotated[
        str,
        typer.Option(
            "--direction",
            help="down: to the data and licenses; up: to publications and feedback; both.",
        ),
    ] = "both",
    events: Annotated[
        bool,
        typer.Option("--events", help=f"List feedback events (at most {EVENTS_LIMIT:,}), not only counts."),
    ] = False,
) -> None:
    """Trace a content item, model version or dataset version down to its data and licenses,
    and up to the publications and feedback it led to."""
    if direction not in ("down", "up", "both"):
        raise GenloopError(
            f"--direction {direction!r} is not one of down, up, both", hint="e.g. --direction up"
        )
    ctx = open_context(workspace)
    found = build_lineage(ctx.catalog, ref, direction=direction, events=events)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    tree = Tree(_title(found))
    if found["down"] is not None:
        _add_down(tree, found["down"])
    if found["up"] is not None:
        _add_up(tree, found["up"])
    Console().print(tree)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "genloop lineage 3f9a2c1b",
            "genloop lineage digits@champion --direction up --events",
            "genloop lineage 3f9a2c1b --json > lineage.json",
        )
    )(lineage)

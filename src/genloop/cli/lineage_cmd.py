"""`genloop lineage`: content → model version → run → dataset version → source/license."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from genloop.catalog.lineage import lineage_for_content
from genloop.cli.common import WorkspaceOption, examples, open_context


def _add_model(tree: Tree, model: dict[str, Any]) -> None:
    node = tree.add(
        f"[bold]model version[/bold] {model['id']} "
        f"({model['family']}, feedback events: {model['feedback_count']})"
    )
    run = model.get("run")
    if run:
        run_node = node.add(f"[bold]run[/bold] {run['id']} ({run['status']}, {run['epochs_done']} epochs)")
        for dataset in run["datasets"]:
            parent = run_node
            for i, version in enumerate(dataset["chain"]):
                role = f" [{dataset['role']}]" if i == 0 else ""
                parent = parent.add(
                    f"[bold]dataset version[/bold] {version['id']}{role} "
                    f"({version['name']}, {version['stage']}, {version['records']:,} records)"
                )
            for source in dataset["chain"][-1]["sources"] if dataset["chain"] else []:
                parent.add(
                    f"[bold]source[/bold] {source['source']}  [bold]license[/bold] {source['license']} "
                    f"({source['records']:,} records)"
                )
    if model.get("parent"):
        _add_model(node.add("[dim]fine-tuned from[/dim]"), model["parent"])


def lineage(
    content_id: Annotated[str, typer.Argument(help="Content id (or a unique prefix of 8+ characters).")],
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage as JSON.")] = False,
) -> None:
    """Trace a content item back to the model, run, data and licenses it came from."""
    ctx = open_context(workspace)
    found = lineage_for_content(ctx.catalog, content_id)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    content = found["content"]
    tree = Tree(
        f"[bold]content[/bold] {content['id']} "
        f"({content['modality']}, {content['condition']}, seed {content['seed']})"
    )
    tree.add(f"[dim]file[/dim] {content['path']}")
    for publication in found["publications"]:
        tree.add(f"[dim]published[/dim] on {publication['channel']} as {publication['id']}")
    _add_model(tree, found["model_version"])
    Console().print(tree)


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples("genloop lineage 3f9a2c1b", "genloop lineage 3f9a2c1b --json > lineage.json")
    )(lineage)

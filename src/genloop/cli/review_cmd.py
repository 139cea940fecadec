"""`genloop review`: the queue of generated items a person must approve before publication."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.generate.review import STATUSES, ReviewItem, approve, list_items, reject, show
from genloop.progress import say

review_app = typer.Typer(
    name="review",
    help="Review generated items that failed a safety check (or whose channel reviews everything).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples(
        "genloop review ls", "genloop review show 3f2a9c1d", "genloop review reject 3f2a --reason 'a name'"
    ),
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _json(items: list[ReviewItem]) -> str:
    return json.dumps([asdict(item) for item in items], ensure_ascii=False, indent=2, default=str)


@review_app.command(
    "ls",
    epilog=examples(
        "genloop review ls", "genloop review ls --status rejected", "genloop review ls --status any --json"
    ),
)
def review_ls(
    workspace: WorkspaceOption = None,
    status: Annotated[str, typer.Option(help=f"{', '.join(STATUSES)} or any.")] = "review",
    limit: Annotated[int, typer.Option(min=1, help="At most this many items, oldest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List items by status (default: those waiting for review), with the checks they failed."""
    ctx = open_context(workspace)
    items = list_items(ctx.catalog, None if status == "any" else status, limit=limit)
    if as_json:
        typer.echo(_json(items))
        return
    for item in items:
        failed = ", ".join(v["check"] for v in item.failed_checks) or "-"
        condition = json.dumps(item.condition, ensure_ascii=False)
        typer.echo(f"{item.id}\t{item.status}\t{item.modality}\t{condition}\tfailed: {failed}\t{item.path}")
    say(f"{len(items):,} item(s) {'in any status' if status == 'any' else status}")


@review_app.command(
    "show", epilog=examples("genloop review show 3f2a9c1d", "genloop review show 3f2a9c1d --json")
)
def review_show(
    content_id: Annotated[
        str, typer.Argument(help="Content id (or a unique prefix of at least 4 characters).")
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """One item: its status, every safety verdict with its reason, and the review history."""
    ctx = open_context(workspace)
    item = show(ctx.catalog, content_id)
    if as_json:
        typer.echo(json.dumps(asdict(item), ensure_ascii=False, indent=2, default=str))
        return
    typer.echo(
        f"{item.id}  {item.status}  {item.modality}  from {item.model_version_id}  channel {item.channel}"
    )
    typer.echo(f"  file:      {item.path}")
    typer.echo(f"  condition: {json.dumps(item.condition, ensure_ascii=False)}")
    typer.echo("  verdicts:" + ("" if item.verdicts else " none (no checks ran)"))
    for verdict in item.verdicts:
        mark = "pass" if verdict.get("passed") else "FAIL"
        score = "" if verdict.get("score") is None else f" (score {verdict['score']:.3g})"
        typer.echo(f"    {mark}  {verdict.get('check')}: {verdict.get('reason')}{score}")
    for entry in item.review_log:
        note = f": {entry['note']}" if entry.get("note") else ""
        typer.echo(f"  {entry['at']}  {entry['from']} → {entry['to']} by {entry['actor']}{note}")


@review_app.command(
    "approve",
    epilog=examples(
        "genloop review approve 3f2a9c1d", "genloop review approve 3f2a 9b1c --note 'checked: fine'"
    ),
)
def review_approve(
    content_ids: Annotated[list[str], typer.Argument(help="Content ids (or unique prefixes).")],
    workspace: WorkspaceOption = None,
    note: Annotated[str | None, typer.Option(help="Why it may be published.")] = None,
) -> None:
    """Approve items: they become publishable (`genloop run` / `publish` sends them out)."""
    ctx = open_context(workspace)
    for item in approve(ctx.catalog, content_ids, note=note):
        typer.echo(f"{item.id}\tapproved")


@review_app.command(
    "reject", epilog=examples("genloop review reject 3f2a9c1d --reason 'contains a phone number'")
)
def review_reject(
    content_ids: Annotated[list[str], typer.Argument(help="Content ids (or unique prefixes).")],
    reason: Annotated[str, typer.Option(help="Why it must not be published (recorded).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Reject items: they are never published; the reason is recorded with the item."""
    ctx = open_context(workspace)
    for item in reject(ctx.catalog, content_ids, reason=reason):
        typer.echo(f"{item.id}\trejected")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app)

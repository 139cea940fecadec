"""`genloop publish`: put items on a channel, and drive the webhook delivery queue.

    genloop publish ITEM_ID… --channel NAME [--arm A]   publish (idempotent per item and channel)
    genloop publish deliver [--loop]                    send due webhook deliveries (retries, backoff)
    genloop publish deliveries [--status dead]          list the queue / the dead-letter list
    genloop publish replay ID… | --dead                 queue deliveries again

`publish ITEM_ID…` is the group's default command: a first argument that is not one of the
sub-commands is taken as an item id.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict
from types import FrameType
from typing import Annotated, Any

import typer
from sqlalchemy import select
from typer.core import TyperGroup

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem
from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError, NotFoundError
from genloop.progress import say
from genloop.publish import publish_content
from genloop.publish.deliveries import STATUSES, deliver_due, deliver_loop, list_deliveries, replay

ITEMS_COMMAND = "items"


class _DefaultToItems(TyperGroup):
    """`genloop publish 3f2a… --channel x` runs the `items` command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: click's (vendored) Context
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [ITEMS_COMMAND, *args]
        return super().parse_args(ctx, args)


publish_app = typer.Typer(
    name="publish",
    cls=_DefaultToItems,
    help=(
        "Publish items on a channel (gallery, folder, webhook, feed) and deliver webhooks.\n\n"
        "[bold]genloop publish ITEM_ID… --channel NAME [--arm A][/bold] publishes ready or approved items "
        "(idempotent per item and channel; items in review or rejected are held back)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples(
        "genloop publish 3f2a9c1d 9b1c77e0 --channel gallery",
        "genloop publish 3f2a9c1d --channel cms --arm B",
        "genloop publish deliver --loop",
        "genloop publish deliveries --status dead",
        "genloop publish replay --dead",
    ),
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _resolve(catalog: Catalog, ref: str) -> str:
    """A content id from an id or a unique prefix of at least 8 characters."""
    with catalog.session() as session:
        if session.get(ContentItem, ref) is not None or len(ref) < 8:
            return ref
        matches = session.scalars(
            select(ContentItem.id).where(ContentItem.id.startswith(ref, autoescape=True)).limit(2)
        ).all()
    if len(matches) == 1:
        return matches[0]
    raise NotFoundError(
        f"content item {ref!r} is {'ambiguous' if matches else 'not in the catalog'}",
        hint="give the full id (`genloop review ls --status any` lists them)",
    )


@publish_app.command(
    ITEMS_COMMAND,
    hidden=True,
    epilog=examples(
        "genloop publish 3f2a9c1d --channel gallery", "genloop publish 3f2a9c1d --channel cms --arm A"
    ),
)
def publish_items_cmd(
    content_ids: Annotated[
        list[str], typer.Argument(help="Content ids (or unique prefixes of 8+ characters).")
    ],
    channel: Annotated[str, typer.Option("--channel", "-c", help="A [channels.NAME] section.")] = "gallery",
    arm: Annotated[str | None, typer.Option(help="A/B arm recorded with each publication.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Publish ready or approved items on a channel; items in review or rejected are held back."""
    ctx = open_context(workspace)
    ids = [_resolve(ctx.catalog, ref) for ref in content_ids]
    outcome = publish_content(
        ctx.catalog, ids, channel, workspace=ctx.workspace, config=ctx.workspace.config, arm=arm
    )
    published = [i for i in ids if i not in outcome.held]
    for content_id, publication_id in zip(published, outcome.publications, strict=True):
        typer.echo(f"{content_id}\t{publication_id}\t{channel}")
    for content_id, state in outcome.held.items():
        typer.echo(f"{content_id}\theld: {state}", err=True)
    say(f"{len(outcome.publications):,} published on {channel}, {len(outcome.held):,} held back")


@publish_app.command(
    "deliver", epilog=examples("genloop publish deliver", "genloop publish deliver --loop --interval 5")
)
def deliver_cmd(
    loop: Annotated[bool, typer.Option("--loop", help="Keep delivering until interrupted (Ctrl-C).")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between rounds with --loop.")] = 2.0,
    workspace: WorkspaceOption = None,
) -> None:
    """Send the webhook deliveries that are due: failures retry with backoff, then go dead."""
    ctx = open_context(workspace)
    config = ctx.workspace.config
    if not loop:
        done = deliver_due(ctx.catalog, config)
        say(f"{len(done.delivered):,} delivered, {len(done.retrying):,} to retry, {len(done.dead):,} dead")
        return
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, _stop), signal.signal(signal.SIGTERM, _stop)
    try:
        total = deliver_loop(ctx.catalog, config, interval_seconds=interval, stop=stop)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    say(f"stopped: {len(total.delivered):,} delivered, {len(total.dead):,} dead")


@publish_app.command(
    "deliveries",
    epilog=examples("genloop publish deliveries", "genloop publish deliveries --status dead --json"),
)
def deliveries_cmd(
    status: Annotated[str | None, typer.Option(help=f"Only {', '.join(STATUSES)}.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """List webhook deliveries (`--status dead`: the dead-letter list)."""
    ctx = open_context(workspace)
    views, total = list_deliveries(ctx.catalog, status=status, channel=channel, limit=limit)
    if as_json:
        rows: list[dict[str, Any]] = [asdict(view) for view in views]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for view in views:
        error = f"\t{view.last_error}" if view.last_error else ""
        typer.echo(
            f"{view.id}\t{view.status}\t{view.channel}\tattempts {view.attempts}"
            f"\t{view.publication_id}{error}"
        )
    say(f"{len(views):,} of {total:,} deliveries")


@publish_app.command(
    "replay", epilog=examples("genloop publish replay 5e0c3a…", "genloop publish replay --dead")
)
def replay_cmd(
    delivery_ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead delivery.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Queue deliveries again (fresh attempt budget); `genloop publish deliver` sends them."""
    if not delivery_ids and not dead:
        raise GenloopError(
            "name delivery ids to replay, or pass --dead", hint="genloop publish deliveries --status dead"
        )
    ctx = open_context(workspace)
    for delivery_id in replay(ctx.catalog, delivery_ids or [], all_dead=dead):
        typer.echo(f"{delivery_id}\tpending")


def register(app: typer.Typer) -> None:
    app.add_typer(publish_app)

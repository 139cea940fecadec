"""`genloop feedback`: what viewers thought of the published items, in and out.

genloop feedback stats [--by model_version --by day] [--json]   like-rate, rating, CTR (Wilson 95 %)
genloop feedback import FILE.csv --map creative=Creative_ID,impressions=Impr,clicks=Clicks
genloop feedback export --format jsonl|parquet --out FILE        every event
genloop feedback pairs --out pairs.jsonl                         TRL prompt/chosen/rejected
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError
from genloop.feedback.analytics import GROUPINGS, FeedbackStats, StatsFilter, feedback_stats
from genloop.feedback.export import iter_events, preference_pairs, write_events_parquet, write_jsonl
from genloop.feedback.importer import import_feedback_csv

feedback_app = typer.Typer(
    name="feedback",
    help="Feedback on published items: analytics, CSV import, exports, preference pairs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=examples(
        "genloop feedback stats",
        "genloop feedback stats --by arm --json",
        "genloop feedback import ads.csv --map creative=Creative_ID,impressions=Impr,clicks=Clicks",
        "genloop feedback export --format parquet --out feedback.parquet",
        "genloop feedback pairs --out pairs.jsonl",
    ),
)

BAR_WIDTH = 20


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _bar(rate: float | None) -> str:
    if rate is None:
        return ""
    filled = round(rate * BAR_WIDTH)
    return f"[green]{'█' * filled}[/green][red]{'░' * (BAR_WIDTH - filled)}[/red]"


def _rate(rate: float | None, interval: tuple[float, float] | None) -> str:
    if rate is None:
        return "-"
    shown = f"{rate:.1%}"
    return f"{shown} [{interval[0]:.1%}–{interval[1]:.1%}]" if interval else shown


def _stats_json(row: FeedbackStats) -> dict[str, object]:
    return {
        **{
            ("model_version_id" if name == "model_version" else name): value
            for name, value in row.group.items()
        },
        "publications": row.publications,
        "impressions": row.impressions,
        "clicks": row.clicks,
        "ctr": row.ctr,
        "ctr_interval": row.ctr_interval,
        "likes": row.likes,
        "dislikes": row.dislikes,
        "like_rate": row.like_rate,
        "like_rate_interval": row.like_rate_interval,
        "ratings": row.ratings,
        "mean_rating": row.mean_rating,
        "rating_interval": row.rating_interval,
        "edits": row.edits,
        "comments": row.comments,
        "flags": row.flags,
    }


@feedback_app.command(
    "stats",
    epilog=examples(
        "genloop feedback stats",
        "genloop feedback stats --by model_version --by day",
        "genloop feedback stats --by arm --model digits --json -w ./shop",
    ),
)
def stats(
    workspace: WorkspaceOption = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help=f"Group by (repeatable): {', '.join(GROUPINGS)}. Default: model_version."),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model name.")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Like-rate (Wilson 95 % interval), mean rating and CTR per group; each viewer's latest vote counts."""
    groups = by or ["model_version"]
    try:
        rows = feedback_stats(
            open_context(workspace).catalog, by=groups, where=StatsFilter(model_name=model, channel=channel)
        )
    except GenloopError as error:
        raise typer.BadParameter(str(error), param_hint="--by") from None
    if as_json:
        typer.echo(json.dumps([_stats_json(row) for row in rows], indent=2, ensure_ascii=False))
        return
    console = _console()
    if not rows:
        console.print("no feedback yet: open the gallery with `genloop serve`, or `genloop feedback import`")
        return
    table = Table(*groups, title=f"feedback per {' × '.join(groups)}")
    for heading in ("votes", "like-rate [95 %]", "", "rating", "impr.", "clicks", "CTR"):
        table.add_column(heading, justify="right")
    for row in rows:
        table.add_row(
            *[row.group[name] or "-" for name in groups],
            str(row.votes),
            _rate(row.like_rate, row.like_rate_interval),
            _bar(row.like_rate),
            "-" if row.mean_rating is None else f"{row.mean_rating:.2f} ({row.ratings})",
            str(row.impressions),
            str(row.clicks),
            _rate(row.ctr, row.ctr_interval),
        )
    console.print(table)


@feedback_app.command(
    "import",
    epilog=examples(
        "genloop feedback import ads.csv --map creative=Creative_ID,impressions=Impr,clicks=Clicks",
        "genloop feedback import 投放报表.csv --map creative=创意ID,impressions=展示,clicks=点击,date=日期",
        "genloop feedback import export.tsv --delimiter $'\\t' --map creative=id,likes=likes --dry-run",
    ),
)
def import_csv(
    file: Annotated[Path, typer.Argument(help="The CSV export (UTF-8 or GBK).", exists=True, dir_okay=False)],
    mapping: Annotated[
        str,
        typer.Option(
            "--map",
            help="TARGET=COLUMN,... targets: creative (publication or content id; required), "
            "impressions, clicks, likes, dislikes, date.",
        ),
    ],
    delimiter: Annotated[str, typer.Option("--delimiter", help="Field separator.")] = ",",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and count; store nothing.")] = False,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import an ad platform's export: each count becomes events on the creative's publication.

    Re-importing the same file stores nothing new; a malformed file stores nothing and names
    the row and column; unknown creative ids are listed row by row.
    """
    catalog = open_context(workspace).catalog
    report = import_feedback_csv(
        catalog, file.read_bytes(), name=file.name, mapping=mapping, delimiter=delimiter, dry_run=dry_run
    )
    if as_json:
        payload = {
            **{k: v for k, v in vars(report).items() if k != "unknown"},
            "unknown": [vars(u) for u in report.unknown],
        }
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    console = _console()
    verb = "would store" if dry_run else "stored"
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(report.by_kind.items())) or "no events"
    console.print(f"{report.file}: {report.rows} rows → {report.events} events ({kinds})")
    console.print(
        f"{verb} {report.stored if not dry_run else report.events}, already there {report.already_stored}"
    )
    for unknown in report.unknown:
        console.print(f"[yellow]row {unknown.row}[/yellow]: {unknown.creative!r} skipped: {unknown.reason}")


@feedback_app.command(
    "export",
    epilog=examples(
        "genloop feedback export --out feedback.jsonl",
        "genloop feedback export --format parquet --out feedback.parquet --model digits",
    ),
)
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    model: Annotated[str | None, typer.Option("--model", help="Only this model name.")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these kinds (repeatable).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Every feedback event with its publication, content item, model version, channel and arm."""
    if fmt not in {"jsonl", "parquet"}:
        raise typer.BadParameter(f"unknown format {fmt!r}; use jsonl or parquet", param_hint="--format")
    rows = iter_events(open_context(workspace).catalog, where=StatsFilter(model_name=model), kinds=kind)
    count = write_jsonl(rows, out) if fmt == "jsonl" else write_events_parquet(rows, out)
    _console().print(f"wrote {count} events to {out}")


@feedback_app.command(
    "pairs",
    epilog=examples(
        "genloop feedback pairs --out pairs.jsonl", "genloop feedback pairs --model adcopy -o p.jsonl"
    ),
)
def pairs(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the JSONL.")],
    model: Annotated[str | None, typer.Option("--model", help="Only this model name.")] = None,
    max_pairs: Annotated[int, typer.Option("--max-pairs-per-condition", min=1)] = 50,
    workspace: WorkspaceOption = None,
) -> None:
    """Preference pairs in TRL's prompt/chosen/rejected shape, from votes and edits (for DPO)."""
    context = open_context(workspace)
    found = preference_pairs(
        context.workspace, context.catalog, model_name=model, max_pairs_per_condition=max_pairs
    )
    count = write_jsonl(iter(found), out)
    _console().print(f"wrote {count} preference pairs to {out}")


def register(app: typer.Typer) -> None:
    """Add the `feedback` group to the `genloop` app."""
    app.add_typer(feedback_app)

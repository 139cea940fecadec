"""`genloop loop`: rounds of generate → publish → feedback → decide → improve → gate."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.errors import GenloopError
from genloop.loop.audience import audience_for
from genloop.loop.rounds import LoopState, RoundSummary, run_loop
from genloop.progress import say


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def _arm_cell(summary: RoundSummary, role: str) -> str:
    arm = summary.arm(role)
    if not arm:
        return "—"
    items = len(summary.stats.get("publications", {}).get(role, []))
    return f"{items} items · {_pct(arm.get('like_rate'))} of {arm.get('impressions', 0):,} looks"


def _outcome(summary: RoundSummary) -> str:
    decision = summary.stats.get("decision") or {}
    improve = summary.stats.get("improve") or {}
    parts = []
    if decision:
        parts.append(f"{decision['action']} (P={decision['p_challenger_better']:.3f})")
    if improve.get("challenger"):
        blocked = any(not g["passed"] for g in improve.get("gates", []))
        parts.append(
            f"{improve['challenger']} via {improve['recipe']}"
            + (" [red]gate-blocked[/red]" if blocked else "")
        )
    elif improve.get("skipped"):
        parts.append("no new challenger")
    return "; ".join(parts) or "—"


def print_summary(summary: RoundSummary) -> None:
    seconds = sum(summary.stats.get("seconds", {}).values())
    events = summary.stats.get("feedback", {}).get("sent", 0)
    say(
        f"[bold]round {summary.round}[/bold]: like-rate {_pct(summary.like_rate)} · "
        f"{events:,} feedback events · {seconds:.0f} s — {_outcome(summary)}"
    )


def _status(ctx: Any, as_json: bool) -> None:
    state = LoopState(ctx.catalog, ctx.config.project.name)
    rows = state.rounds()
    decisions = state.decisions()
    if as_json:
        payload = {
            "rounds": [
                {
                    "round": r.round,
                    "phase": r.phase,
                    "champion": r.champion_id,
                    "challenger": r.challenger_id,
                    "new_challenger": r.new_challenger_id,
                    "stats": r.stats,
                }
                for r in rows
            ],
            "decisions": [
                {
                    "round": d.round,
                    "action": d.action,
                    "champion": d.champion_id,
                    "challenger": d.challenger_id,
                    "p_challenger_better": d.p_challenger_better,
                    "reason": d.reason,
                    "numbers": d.numbers,
                    "at": d.created_at.isoformat(),
                }
                for d in decisions
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not rows:
        say(f"no loop rounds for {ctx.config.project.name} yet: run `genloop loop`")
        return
    table = Table("round", "phase", "champion", "challenger", "like-rate", "outcome", title="loop rounds")
    for row in rows:
        summary = RoundSummary(row.round, str(row.champion_id), row.challenger_id, dict(row.stats))
        table.add_row(
            str(row.round),
            row.phase,
            _arm_cell(summary, "champion") + f"\n{row.champion_id}",
            (_arm_cell(summary, "challenger") + f"\n{row.challenger_id}") if row.challenger_id else "—",
            _pct(summary.like_rate),
            _outcome(summary),
        )
    console = Console()
    console.print(table)
    if decisions:
        log = Table("round", "action", "challenger", "P(better)", "reason", title="allocation decisions")
        for d in decisions:
            p = "—" if d.p_challenger_better is None else f"{d.p_challenger_better:.3f}"
            log.add_row(str(d.round or "—"), d.action, d.challenger_id, p, d.reason)
        console.print(log)


def loop_command(
    workspace: WorkspaceOption = None,
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds to run now (default [loop].rounds).")
    ] = None,
    forever: Annotated[bool, typer.Option(help="Keep going until interrupted (Ctrl-C; resumable).")] = False,
    simulate: Annotated[
        str | None,
        typer.Option(
            help="A simulated audience: likes-class:LABEL, bold-strokes, short-cheerful, major-key "
            "(default [loop.audience].persona; none: wait for real viewers)."
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="The simulated audience uses this running `genloop serve`.")
    ] = None,
    per_round: Annotated[int | None, typer.Option(min=1, help="Items published per round.")] = None,
    status: Annotated[
        bool, typer.Option("--status", help="Show the rounds and decisions so far; run nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --status: print JSON.")] = False,
) -> None:
    """Close the loop: each round generates from the champion (and a live challenger), publishes,
    collects feedback, lets the bandit promote or retire, and trains the next challenger.

    A killed loop resumes inside its unfinished round without republishing or double-counting
    feedback. `--status` shows every round's like-rate and every decision with its numbers.
    """
    ctx = open_context(workspace)
    if status:
        _status(ctx, as_json)
        return
    if forever and rounds is not None:
        raise GenloopError("give --rounds or --forever, not both")
    updates: dict[str, Any] = {}
    if per_round is not None:
        updates["per_round"] = per_round
    if simulate is not None:
        updates["audience"] = ctx.config.loop.audience.model_copy(update={"persona": simulate})
    config = ctx.config.model_copy(update={"loop": ctx.config.loop.model_copy(update=updates)})
    audience = audience_for(ctx.workspace, ctx.catalog, config, url=url)
    with ctx.workspace.lock():
        summaries = run_loop(
            ctx.workspace,
            ctx.catalog,
            config,
            audience,
            rounds=None if forever else (rounds or config.loop.rounds),
            on_round=print_summary,
        )
    rates = " → ".join(_pct(s.like_rate) for s in summaries)
    say(f"[green]✓[/green] {len(summaries)} round(s); like-rate per round: {rates}")
    say("see every round and decision: genloop loop --status")


def register(app: typer.Typer) -> None:
    app.command(
        name="loop",
        epilog=examples(
            "genloop loop --simulate likes-class:7 --rounds 3 -w genloop-demo",
            "genloop loop --rounds 1",
            "genloop loop --status",
            "genloop loop --status --json",
        ),
    )(loop_command)

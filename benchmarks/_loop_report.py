"""What the loop-curve benchmarks (loop_fashion.py, loop_text.py, loop_music.py) share: the prepared
workspace, the leading and trailing cells of a round's row, the timed loop itself, and the machine line."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genloop.catalog import open_catalog
from genloop.catalog.models import FeedbackEvent
from genloop.loop.rounds import RoundSummary, run_loop
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def arm_cells(summary: RoundSummary) -> str:
    """`| round | champion like-rate (items) | challenger like-rate (items) | round like-rate | decision |`"""
    publications = summary.stats.get("publications", {})
    decision = summary.stats.get("decision") or {}
    challenger = pct(summary.arm("challenger").get("like_rate")) if summary.challenger else "—"
    p = " (P={:.3f})".format(decision["p_challenger_better"]) if decision else ""
    return (
        f"| {summary.round} | {pct(summary.arm('champion').get('like_rate'))} "
        f"({len(publications.get('champion', []))}) | {challenger} "
        f"({len(publications.get('challenger', []))}) | **{pct(summary.like_rate)}** | "
        f"{decision.get('action', '—')}{p} |"
    )


def tail_cells(summary: RoundSummary) -> str:
    """`| events | s |` of a round."""
    seconds = sum(summary.stats.get("seconds", {}).values())
    return f" {summary.stats['feedback']['sent']:,} | {seconds:.0f} |"


def timed_loop(
    ws: Any, catalog: Any, audience: Any, rounds: int, on_round: Callable[[RoundSummary], None]
) -> tuple[list[RoundSummary], float, int]:
    """(summaries, loop seconds, feedback events stored) of `rounds` rounds."""
    began = time.perf_counter()
    summaries = run_loop(ws, catalog, ws.config, audience, rounds=rounds, on_round=on_round)
    seconds = time.perf_counter() - began
    with catalog.session() as session:
        events = session.query(FeedbackEvent).count()
    return summaries, seconds, events


def machine_line(load_before: tuple[float, ...]) -> str:
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return (
        f"date: {when}; machine: {platform.machine()}, {os.cpu_count()} vCPU, "
        f"load before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
        f"GENLOOP_NUM_THREADS={os.environ.get('GENLOOP_NUM_THREADS', '(unset)')}"
    )


def prepared_workspace(
    workspace: Path | None, prefix: str, config_text: str
) -> tuple[Workspace, Any, float, tuple[float, ...]]:
    """A workspace (given, or a new temporary one) with `config_text` as its genloop.toml unless it has
    one, run up to evaluate: (workspace, catalog, setup seconds, load average before)."""
    os.environ.pop("GENLOOP_DATABASE_URL", None)
    root = workspace or Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    config_file = root / "genloop.toml"
    if not config_file.exists():
        config_file.write_text(config_text, encoding="utf-8")
    load_before = os.getloadavg()
    began = time.perf_counter()
    ws = Workspace(root)
    catalog = open_catalog(ws.database_url)
    run_pipeline(ws, catalog, until="evaluate")
    return ws, catalog, time.perf_counter() - began, load_before

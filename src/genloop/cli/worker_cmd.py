"""`genloop worker`: run the background jobs the server queues (generate, evaluate, train, deliveries).

The server never does heavy work itself: `POST /api/v1/generations` only queues a job.
Start one or more workers beside it (on this machine or any other that reaches the same
catalog); each claims one job at a time. Ctrl-C or SIGTERM puts a running job back in
the queue for the next worker.
"""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import asdict
from types import FrameType
from typing import Annotated

import typer

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.jobs.queue import JOB_KINDS
from genloop.jobs.worker import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS, Worker
from genloop.progress import say


def worker_command(
    workspace: WorkspaceOption = None,
    once: Annotated[bool, typer.Option("--once", help="Run one queued job (if any), then exit.")] = False,
    kinds: Annotated[
        list[str] | None,
        typer.Option("--kinds", "-k", help=f"Only these job kinds (repeatable): {', '.join(JOB_KINDS)}."),
    ] = None,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between looks at an empty queue.")] = 1.0,
    stale_after: Annotated[
        float,
        typer.Option(min=1.0, help="Requeue running jobs whose worker was silent this many seconds."),
    ] = STALE_AFTER_SECONDS,
    as_json: Annotated[bool, typer.Option("--json", help="--once: print the finished job as JSON.")] = False,
) -> None:
    """Run queued background jobs until stopped (or one with --once)."""
    ctx = open_context(workspace)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker = Worker(
        ctx.workspace,
        kinds=kinds or None,
        heartbeat_seconds=min(HEARTBEAT_SECONDS, stale_after / 4),
        stale_after=stale_after,
    )
    if once:
        job = worker.run_once()
        if job is None:
            say("no queued job")
        elif as_json:
            typer.echo(json.dumps(asdict(job), ensure_ascii=False, indent=2, default=str))
        else:
            say(f"job {job.id} ({job.kind}): {job.status}" + (f" — {job.error}" if job.error else ""))
        if job is not None and job.status == "failed":
            raise typer.Exit(1)
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    say(f"worker {worker.name} waiting for jobs ({', '.join(kinds or JOB_KINDS)}); Ctrl-C stops it")
    try:
        ran = worker.run(poll_seconds=poll)
    except KeyboardInterrupt:
        say(f"worker {worker.name} stopped")
        return
    say(f"worker {worker.name} ran {ran} job(s)")


def register(app: typer.Typer) -> None:
    app.command(
        name="worker",
        epilog=examples(
            "genloop worker",
            "genloop worker --once",
            "genloop worker --kinds generate --kinds evaluate",
            "GENLOOP_DATABASE_URL=postgresql+psycopg://db/genloop genloop worker -w /srv/ws",
        ),
    )(worker_command)

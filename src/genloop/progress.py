"""Progress bars for long work: one Rich bar per stage, silent when not a terminal or in tests.

with stage_progress("train", total=steps) as advance:
    for batch in loader:
        ...
        advance(1, loss=f"{loss:.3f}")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

Advance = Callable[..., None]


def progress_enabled() -> bool:
    if os.environ.get("GENLOOP_NO_PROGRESS"):
        return False
    return console.is_terminal or bool(os.environ.get("GENLOOP_FORCE_PROGRESS"))


@contextmanager
def stage_progress(description: str, total: int | None) -> Iterator[Advance]:
    """Yield `advance(n=1, **fields)`; extra fields (loss=..., kept=...) show beside the bar."""
    if not progress_enabled():

        def advance_quietly(n: int = 1, **_fields: Any) -> None:
            return None

        yield advance_quietly
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields: Any) -> None:
            info = "  ".join(f"{k}={v}" for k, v in fields.items())
            progress.update(task, advance=n, info=info)

        yield advance


def say(message: str) -> None:
    """A line for the user (stderr, so stdout stays parseable for `--json` output)."""
    console.print(message, highlight=False, soft_wrap=True)

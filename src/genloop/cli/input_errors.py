"""Exit status 3: the stages finished, but some input records were broken and were dropped.

`genloop collect`, `clean` and `run` (and every stage verb, which runs the stages before
it) exit with

    0  everything read was usable (duplicates and quality filters do not count),
    1  an error stopped the run (the message says what to do),
    3  the run finished and wrote usable datasets, but records were dropped for *input
       errors*: files or lines that could not be read at collect, or records a clean
       step found undecodable, truncated, unparsable or a decompression bomb.

so a script or CI job can tell "done" from "done, but look at your data" without
parsing output. Only stages that ran in this invocation count: a cached stage reported
its errors when it ran, and `genloop data show ID` still lists them. The counts come
from each version's manifest (`input_errors.count`), written by the data stage itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import typer
from rich.markup import escape

from genloop.catalog import Catalog
from genloop.catalog.models import DatasetVersion
from genloop.pipeline.runner import StageRun
from genloop.progress import say

INPUT_ERROR_EXIT_CODE = 3
EXIT_STATUS_HELP = (
    "Exit status: 0 ok; 1 error; 3 finished, but records were dropped for input errors "
    "(unreadable/undecodable/corrupt input; `genloop data show ID` lists them)."
)
DATA_STAGES = ("collect", "clean")


def input_error_lines(catalog: Catalog, runs: Iterable[StageRun]) -> list[str]:
    """One line per data stage that ran and dropped records for input errors (empty: none)."""
    lines: list[str] = []
    for run in runs:
        dataset_id = run.outputs.get("dataset")
        if run.status != "ran" or run.stage not in DATA_STAGES or not isinstance(dataset_id, str):
            continue
        with catalog.session() as session:
            row = session.get(DatasetVersion, dataset_id)
            manifest = dict(row.manifest) if row is not None else {}
        if run.stage == "collect":
            count = int((manifest.get("input_errors") or {}).get("count", len(manifest.get("problems", []))))
        else:
            count = int(((manifest.get("report") or {}).get("input_errors") or {}).get("count", 0))
        if count:
            where = (
                "the problems listed by `genloop data show`"
                if run.stage == "collect"
                else "`genloop data report` (and its rejects, with [clean].write_rejects = true)"
            )
            lines.append(
                f"{run.stage}: {count:,} record(s) dropped for input errors in dataset version "
                f"{dataset_id}; see `genloop data show {dataset_id[:12]}` and {where}"
            )
    return lines


def exit_on_input_errors(catalog: Catalog, runs: Iterable[StageRun]) -> None:
    """Print a summary and exit with status 3 when a data stage of `runs` dropped input errors."""
    lines = input_error_lines(catalog, runs)
    if not lines:
        return
    for line in lines:
        say(f"[yellow]![/yellow] {escape(line)}")
    raise typer.Exit(INPUT_ERROR_EXIT_CODE)

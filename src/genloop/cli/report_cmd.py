"""`genloop report`: one self-contained HTML page of the whole workspace (data, training, metrics, feedback).

Not to be confused with `genloop data report`, which covers one dataset version's cleaning in depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genloop.cli.common import WorkspaceOption, examples, open_context
from genloop.report import write_report


def report(
    workspace: WorkspaceOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="HTML file to write. Default: reports/report.html in the workspace."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model name (default: every model).")
    ] = None,
) -> None:
    """Write one HTML file: dataset versions and cleaning, loss curves, samples, metrics per version
    with the gates, feedback. Charts and samples are inlined, so it opens from disk, offline.
    """
    ctx = open_context(workspace)
    target = output or ctx.workspace.root / "reports" / "report.html"
    written = write_report(ctx.workspace, ctx.catalog, target, model=model)
    typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "genloop report",
            "genloop report -o /tmp/digits.html --model digits",
            "genloop report -w ~/shop-photos",
        )
    )(report)

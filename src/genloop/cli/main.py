"""The `genloop` command: one Typer app; each verb group lives in its own module.

Errors from bad input (`GenloopError`) are printed with their hint and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from genloop import __version__
from genloop.errors import GenloopError

VERB_MODULES = (
    "init_cmd",
    "run_cmd",
    "data_cmds",
    "data_inspect_cmds",
    "annotate_cmds",
    "models_cmd",
    "generate_cmd",
    "review_cmd",
    "verify_cmd",
    "serve_cmd",
    "keys_cmd",
    "worker_cmd",
    "publish_cmd",
    "simulate_cmd",
    "feedback_cmd",
    "improve_cmd",
    "loop_cmd",
    "lineage_cmd",
    "tune_cmd",
    "report_cmd",
    "support_cmd",
    "adcopy_cmd",
)

app = typer.Typer(
    name="genloop",
    help=(
        "genloop: turn your data into generated content, publish it, learn from feedback, retrain.\n\n"
        "Start with `genloop demo` (built-in MNIST digits), or `genloop init --template images` "
        "in your own project folder, then `genloop run`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """genloop: data-driven generative content."""


for _module in VERB_MODULES:
    importlib.import_module(f"genloop.cli.{_module}").register(app)


def main() -> None:
    try:
        app(standalone_mode=False)
    except GenloopError as exc:
        console = Console(stderr=True)
        console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        Console(stderr=True).print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()

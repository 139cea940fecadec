"""`genloop data ls` and `genloop data show` on a real workspace with real versions.

The group is mounted on a bare Typer app with the same `register(app)` call the
`genloop` command makes, so these tests exercise only this group.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli.data_cmds import register
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.errors import NotFoundError
from genloop.workspace import Workspace


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="rich")

    @app.callback()
    def _root() -> None:
        """genloop (the data group only)."""

    register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output, result.exception


@pytest.fixture
def cleaned(sqlite_workspace: Workspace) -> CleanResult:
    """Two good images, one blank: a collect and a clean version with one drop."""
    root = sqlite_workspace.root / "data" / "cat"
    root.mkdir(parents=True)
    for seed in range(2):
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)).save(
            root / f"{seed}.png"
        )
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "blank.png")
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = CollectConfig(source="folder", path="data", license="CC0-1.0")
    collected = collect(sqlite_workspace, catalog, cfg, name="pets")
    return clean(sqlite_workspace, catalog, collected.dataset, CleanConfig())


def test_ls_lists_versions_with_stage_parent_and_license(
    cli: typer.Typer, sqlite_workspace: Workspace, cleaned: CleanResult
) -> None:
    code, output, _ = run(cli, "data", "ls", "-w", str(sqlite_workspace.root))
    assert code == 0, output
    clean_line = next(line for line in output.splitlines() if cleaned.dataset.id in line and "clean" in line)
    assert cleaned.dataset.manifest["parent"] in clean_line
    assert "folder:data (CC0-1.0)" in clean_line
    code, output, _ = run(cli, "data", "ls", "-w", str(sqlite_workspace.root), "--json", "--stage", "collect")
    [row] = json.loads(output)
    assert (row["id"], row["records"], row["labels"]) == (cleaned.dataset.manifest["parent"], 3, 1)


def test_show_prints_the_cleaning_report_with_examples(
    cli: typer.Typer, sqlite_workspace: Workspace, cleaned: CleanResult
) -> None:
    prefix = cleaned.dataset.id[:6]
    code, output, _ = run(cli, "data", "show", prefix, "-w", str(sqlite_workspace.root))
    assert code == 0, output
    assert cleaned.dataset.id in output and "kept 2, dropped 1" in output
    assert "blank image" in output and "data/cat/blank.png: blank image (std=0.0 < 2.0)" in output
    code, output, _ = run(cli, "data", "show", prefix, "-w", str(sqlite_workspace.root), "--json")
    assert json.loads(output)["manifest"]["report"]["dropped"]["blank image"]["count"] == 1


def test_show_unknown_version_is_a_not_found_error(cli: typer.Typer, sqlite_workspace: Workspace) -> None:
    code, _, exception = run(cli, "data", "show", "nope", "-w", str(sqlite_workspace.root))
    assert code != 0
    assert isinstance(exception, NotFoundError) and "genloop data ls" in (exception.hint or "")


def test_ls_on_a_fresh_workspace_says_how_to_start(cli: typer.Typer, sqlite_workspace: Workspace) -> None:
    code, output, _ = run(cli, "data", "ls", "-w", str(sqlite_workspace.root))
    assert code == 0 and "genloop collect" in output


@pytest.mark.parametrize("command", [["data"], ["data", "ls"], ["data", "show"]])
def test_help_has_examples(cli: typer.Typer, command: list[str]) -> None:
    code, output, _ = run(cli, *command, "--help")
    assert code == 0 and "Examples" in output and "$ genloop data" in output

"""Exit status 3: `genloop collect` / `clean` / `run` finished, but records were dropped for input errors.

Broken input (a truncated PNG, a JSONL line that is not JSON) gives exit status 3 and a
line naming the count and where to look; drops that are the pipeline's judgement (a
blank image, a duplicate) leave the exit status 0. The verbs are mounted on a bare Typer
app with the same `register(app)` call the `genloop` command makes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli import data_cmds
from genloop.cli.input_errors import INPUT_ERROR_EXIT_CODE
from genloop.cli.run_cmd import register
from genloop.data.datasets import open_dataset_version
from genloop.workspace import Workspace

IMAGES_CONFIG = """
[project]
name = "pets"

[collect]
source = "folder"
path = "data"
license = "CC0-1.0"

[pipeline]
stages = ["collect", "clean"]
"""

TABLE_CONFIG = """
[project]
name = "quotes"

[collect]
source = "table"
path = "data/quotes.jsonl"
modality = "text"
license = "CC0-1.0"

[pipeline]
stages = ["collect", "clean"]
"""


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="rich")

    @app.callback()
    def _root() -> None:
        """genloop (the stage verbs only)."""

    register(app)
    return app


def data_cmds_app() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="rich")

    @app.callback()
    def _root() -> None:
        """genloop (the data group only)."""

    data_cmds.register(app)
    return app


def invoke(app: typer.Typer, root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "-w", str(root)], env={"COLUMNS": "200"})
    if result.exit_code not in (0, INPUT_ERROR_EXIT_CODE):
        raise AssertionError(f"exit {result.exit_code}: {result.output}") from result.exception
    return result.exit_code, result.output


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _images_workspace(root: Path, *, truncated: bool) -> Path:
    (root / "data" / "cat").mkdir(parents=True)
    (root / "genloop.toml").write_text(IMAGES_CONFIG, encoding="utf-8")
    for seed in range(3):
        (root / "data" / "cat" / f"{seed}.png").write_bytes(_png(seed))
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(root / "data" / "cat" / "blank.png")
    if truncated:
        (root / "data" / "cat" / "broken.png").write_bytes(_png(9)[:60])
    return root


def test_truncated_image_makes_clean_exit_3_naming_count_and_report(
    cli: typer.Typer, sqlite_workspace: Workspace
) -> None:
    root = _images_workspace(sqlite_workspace.root, truncated=True)
    code, output = invoke(cli, root, "clean")
    assert code == INPUT_ERROR_EXIT_CODE
    assert "clean: 1 record(s) dropped for input errors" in output
    assert "genloop data report" in output
    # The count is in the clean version's manifest too, with the step that dropped it.
    catalog = open_catalog(sqlite_workspace.database_url)
    from genloop.catalog.models import DatasetVersion

    with catalog.session() as session:
        row = next(r for r in session.query(DatasetVersion).all() if r.stage == "clean")
        version_id = row.id
    report = open_dataset_version(sqlite_workspace, catalog, version_id).manifest["report"]
    assert report["input_errors"] == {"count": 1, "steps": ["decode-image"]}
    assert report["kept"] == 3  # the blank one is a judgement, not an input error
    shown = CliRunner().invoke(data_cmds_app(), ["data", "show", version_id, "-w", str(root)])
    assert "dropped 2 (1 for input errors: decode-image)" in shown.output


def test_only_judgement_drops_exit_0(cli: typer.Typer, sqlite_workspace: Workspace) -> None:
    root = _images_workspace(sqlite_workspace.root, truncated=False)
    code, output = invoke(cli, root, "run")
    assert code == 0, output
    assert "input errors" not in output


def test_broken_jsonl_line_makes_collect_exit_3(cli: typer.Typer, sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root
    (root / "genloop.toml").write_text(TABLE_CONFIG, encoding="utf-8")
    (root / "data").mkdir()
    lines = [
        '{"text": "A good first line of text."}',
        '{"text": "unterminated',
        '{"text": "Another good line."}',
    ]
    (root / "data" / "quotes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = invoke(cli, root, "collect")
    assert code == INPUT_ERROR_EXIT_CODE
    assert "collect: 1 record(s) dropped for input errors" in output
    assert "genloop data show" in output


def test_help_documents_exit_status_3(cli: typer.Typer) -> None:
    for verb in ("run", "collect", "clean"):
        result = CliRunner().invoke(cli, [verb, "--help"], env={"COLUMNS": "200"})
        assert "3 finished, but records were dropped for input errors" in result.output, verb

"""`genloop generate` ad hoc: per-item lines or JSON, a summary, clear errors; the Ray path
names its extra when Ray is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli.generate_cmd import parse_params
from genloop.cli.main import app
from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.engine import GenerationRequest, generate
from genloop.workspace import Workspace
from support.tiny_generators import register_tiny


@pytest.fixture
def gpt_workspace(sqlite_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, str]:
    catalog = open_catalog(sqlite_workspace.database_url)
    return sqlite_workspace, register_tiny(sqlite_workspace, catalog, "gpt", tmp_path)


def test_generate_prints_each_item_and_a_summary(gpt_workspace: tuple[Workspace, str]) -> None:
    workspace, version = gpt_workspace
    runner = CliRunner()
    command = [
        "generate",
        "-w",
        str(workspace.root),
        "--model",
        version,
        "-p",
        "hello",
        "-p",
        "the",
        "-n",
        "2",
    ]
    options = [
        "--max-new-tokens",
        "6",
        "--param",
        "temperature=0.7",
        "--param",
        "top_k=5",
        "--batch-size",
        "3",
    ]
    first = runner.invoke(app, [*command, *options, "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert [item["condition"] for item in out["items"]] == [{"prompt": "hello"}] * 2 + [{"prompt": "the"}] * 2
    assert {item["status"] for item in out["items"]} == {"ready"} and out["summary"]["new"] == 4
    assert all(Path(item["path"]).is_file() for item in out["items"])
    again = runner.invoke(app, [*command, *options])
    assert again.exit_code == 0
    lines = again.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [item["id"] for item in out["items"]]
    assert all("\texisting\t" in line for line in lines)
    assert "0 new, 4 existing, 0 sent to review" in again.stderr


def test_generate_refuses_bad_input_clearly(gpt_workspace: tuple[Workspace, str]) -> None:
    workspace, version = gpt_workspace
    runner = CliRunner()
    ws = ["-w", str(workspace.root)]
    cases = [
        (["--model", version, "-l", "a"], "takes prompts, not class labels"),
        (["--model", version, "-n", "0"], "--count must be ≥ 1"),
        (["--model", "nobody"], "'nobody'"),
        (["-l", "a"], "need --model"),
        (["--model", version, "--executor", "spark"], "unknown executor 'spark'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["generate", *ws, *args])
        assert result.exit_code != 0 and message in str(result.exception) + result.output, args
    with pytest.raises(GenloopError, match="is not key=value"):
        parse_params(["temperature"])
    assert parse_params(["temperature=0.5", 'stop=["\\n"]', "scheduler=ddim"]) == {
        "temperature": 0.5,
        "stop": ["\n"],
        "scheduler": "ddim",
    }


def test_the_ray_executor_names_its_extra_when_ray_is_missing(
    gpt_workspace: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace, version = gpt_workspace
    monkeypatch.setitem(sys.modules, "ray", None)  # as on an install without genloop[ray]
    catalog = open_catalog(workspace.database_url)
    with pytest.raises(MissingDependencyError, match="needs Ray") as error:
        generate(workspace, catalog, GenerationRequest(model=version, count=1), executor="ray")
    assert "genloop[ray]" in (error.value.hint or "")


def test_dry_run_says_what_would_be_made_and_makes_nothing(gpt_workspace: tuple[Workspace, str]) -> None:
    workspace, version = gpt_workspace
    result = CliRunner().invoke(
        app, ["generate", "-w", str(workspace.root), "--model", version, "-p", "hi", "-n", "3", "--dry-run"]
    )
    assert result.exit_code == 0 and "would generate 3 text items" in result.stderr
    assert not (workspace.state_dir / "content").exists()

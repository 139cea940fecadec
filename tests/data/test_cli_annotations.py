"""`genloop annotations ...`, `genloop data diff` and `genloop data sample` on a real workspace.

The groups are mounted on a bare Typer app with the same `register(app)` calls the
`genloop` command makes (data first, then the inspect commands, then annotations).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.cli import annotate_cmds, data_cmds, data_inspect_cmds
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError, NotFoundError
from genloop.workspace import Workspace

TICKETS = ["我要退款", "refund please", "password reset", "快递太慢了"]


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="rich")

    @app.callback()
    def _root() -> None:
        """genloop (data and annotations groups only)."""

    for module in (data_cmds, data_inspect_cmds, annotate_cmds):
        module.register(app)
    return app


def run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def tickets(sqlite_workspace: Workspace) -> DatasetHandle:
    records = [
        Record.create(t.encode(), modality="text", label=None, source="t", license="MIT") for t in TICKETS
    ]
    catalog = open_catalog(sqlite_workspace.database_url)
    return write_dataset_version(sqlite_workspace, catalog, records, name="tickets", stage="clean")


def test_label_with_two_people_then_agreement_export_import_apply(
    cli: typer.Typer, sqlite_workspace: Workspace, tickets: DatasetHandle, tmp_path: Path
) -> None:
    ws = ["-w", str(sqlite_workspace.root)]
    out = run(
        cli, "annotations", "queue", *ws, "--version", tickets.id[:8], "--add-unlabelled", "--annotators", "2"
    )
    assert "queued 4 new tasks" in out and "4" in out
    answers = {
        "ana": ["refund", "refund", "account", "shipping"],
        "bo": ["refund", "refund", "account", "refund"],
    }
    for name, labels in answers.items():
        for label in labels:
            task = json.loads(run(cli, "annotations", "next", *ws, "--annotator", name, "--json"))
            assert task["content"] in TICKETS
            out = run(cli, "annotations", "label", str(task["id"]), label, *ws, "--annotator", name)
            assert f"{name} → {label}" in out
    assert "nothing left for ana" in run(cli, "annotations", "next", *ws, "-a", "ana")

    report = json.loads(run(cli, "annotations", "agreement", *ws, "--json"))
    # ana: r r a s; bo: r r a r → p_o = 3/4, p_e = 2/4·3/4 + 1/4·1/4 = 7/16, κ = 5/9.
    assert report["pairs"][0]["kappa"] == pytest.approx(5 / 9)
    assert "Cohen's κ" in run(cli, "annotations", "agreement", *ws)

    exported = tmp_path / "tasks.json"
    run(cli, "annotations", "export", *ws, "--format", "label-studio", "-o", str(exported))
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    assert len(tasks) == 4 and all(len(t["annotations"]) == 2 for t in tasks)

    labels = tmp_path / "third.jsonl"
    labels.write_text(
        "".join(json.dumps({"id": t["data"]["genloop_id"], "label": "refund"}) + "\n" for t in tasks),
        encoding="utf-8",
    )
    assert "imported 4 labels" in run(cli, "annotations", "import", str(labels), *ws, "-a", "cy")

    out = run(cli, "annotations", "apply", *ws)
    assert "4 human labels applied" in out
    annotated = out.split("dataset version ", 1)[1].split(":", 1)[0]
    diff = json.loads(run(cli, "data", "diff", tickets.id, annotated, *ws, "--json"))
    assert diff["relabelled"]["count"] == 4 and diff["added"]["count"] == diff["removed"]["count"] == 0
    assert diff["labels"]["(none)"] == [4, 0] and diff["labels"]["refund"] == [0, 3]
    assert "relabelled 4" in run(cli, "data", "diff", tickets.id[:6], annotated[:6], *ws)

    sample = [
        json.loads(line)
        for line in run(cli, "data", "sample", annotated, "-n", "2", *ws, "--json").splitlines()
    ]
    assert len(sample) == 2 and all(row["meta"]["human_label"]["votes"] in ("3/3", "2/3") for row in sample)
    assert "refund" in run(cli, "data", "sample", annotated, "--label", "refund", *ws)


def test_cli_errors_are_actionable(
    cli: typer.Typer, sqlite_workspace: Workspace, tickets: DatasetHandle
) -> None:
    ws = ["-w", str(sqlite_workspace.root)]
    result = CliRunner().invoke(cli, ["annotations", "export", *ws, "-o", "x.jsonl"])
    assert isinstance(result.exception, DataError) and "no annotation tasks yet" in result.exception.message
    result = CliRunner().invoke(cli, ["annotations", "label", "7", "x", *ws, "-a", "ana"])
    assert isinstance(result.exception, NotFoundError) and "no annotation task 7" in result.exception.message
    result = CliRunner().invoke(cli, ["data", "sample", "zzz", *ws])
    assert isinstance(result.exception, NotFoundError)
    assert "the annotation queue is empty" in run(cli, "annotations", "queue", *ws)


def test_every_new_command_has_examples(cli: typer.Typer) -> None:
    commands = [
        ["annotations", c] for c in ("queue", "next", "label", "agreement", "export", "import", "apply")
    ]
    for command in [["annotations"], ["data", "diff"], ["data", "sample"], *commands]:
        assert "Examples" in run(cli, *command, "--help"), command

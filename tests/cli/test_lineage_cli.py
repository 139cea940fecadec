"""`genloop lineage` as a user runs it: tree, --json, --direction, --events, fine-tunes, id errors.

One tiny pipeline serves every check (it is most of the cost); two checks run the real
command in a subprocess, the rest call the command function in process.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import Publication
from genloop.cli.lineage_cmd import lineage
from genloop.errors import GenloopError
from genloop.feedback.events import record_feedback
from genloop.improve.recipe import improve
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace


def test_lineage_command_tree_json_fine_tunes_and_errors(  # type: ignore[no-untyped-def]
    genloop, sqlite_workspace: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    catalog = open_catalog(sqlite_workspace.database_url)
    out = {r.stage: r.outputs for r in run_pipeline(sqlite_workspace, catalog)}
    collect = out["collect"]["dataset"]
    with catalog.session() as s:
        publications = s.scalars(select(Publication).order_by(Publication.id)).all()
    record_feedback(catalog, publication_id=publications[0].id, kind="like", viewer_id="viewer-7")
    record_feedback(catalog, publication_id=publications[1].id, kind="like", viewer_id="viewer-8")
    ws = str(sqlite_workspace.root)

    # The real command: a published item's tree reaches the source and its license, and its feedback.
    tree = genloop("lineage", publications[0].content_item_id[:8], "-w", ws, "--events")
    assert tree.returncode == 0, tree.stderr
    for hop in ("made from", "model version", "run", "dataset version", "mnist-5k", "CC-BY-SA-3.0"):
        assert hop in tree.stdout
    assert "used by" in tree.stdout and f"publication {publications[0].id}" in tree.stdout
    assert "feedback like 1" in tree.stdout and "like by viewer-7" in tree.stdout
    unknown = genloop("lineage", "zzzzzzzz", "-w", ws)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "no content item, model version or dataset version" in unknown.stderr and "hint:" in unknown.stderr

    # --json: one document; --direction up leaves `down` null; --events lists them.
    lineage(collect, workspace=sqlite_workspace.root, as_json=True, direction="up", events=True)
    found = json.loads(capsys.readouterr().out)
    assert found["subject"] == {"kind": "dataset_version", "id": collect}
    assert found["down"] is None and found["up"]["totals"]["feedback"] == {"like": 2}
    assert [e["viewer_id"] for e in found["up"]["events"]] == ["viewer-7", "viewer-8"]

    # After a fine-tune, the `up` tree of the collected data shows it once, under its parent.
    result = improve(sqlite_workspace, catalog, sqlite_workspace.config)
    lineage(collect, workspace=sqlite_workspace.root, direction="up")
    text = capsys.readouterr().out
    assert "made from" not in text and "used by" in text
    assert f"{result.champion} @champion (vae): 20 content items, 20 publications, feedback like 2" in text
    assert "fine-tuned into" in text and f"{result.challenger} @challenger" in text
    assert f"{result.challenger} (shown above)" in text  # reached again through its own run
    assert "in all 20 content items, 20 publications, 2 feedback events (like 2)" in text
    with pytest.raises(GenloopError, match="--direction 'sideways'"):
        lineage("digits", workspace=sqlite_workspace.root, direction="sideways")

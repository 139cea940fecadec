"""JSONL and Label Studio JSON: export the queue, import labels back, malformed input named by file:line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.data.annotate.auto import Suggestion
from genloop.data.annotate.formats import read_jsonl, read_label_studio
from genloop.data.annotate.interchange import export_tasks, import_labels
from genloop.data.annotate.queue import agreement, enqueue, submit, tasks
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError
from genloop.workspace import Workspace
from support.mnist import mnist_pngs


def queued(workspace: Workspace) -> tuple[Catalog, DatasetHandle]:
    """Two texts and one real digit, all queued; the first with a suggestion and one label."""
    catalog = open_catalog(workspace.database_url)
    png, _ = mnist_pngs(1)[3]
    records = [
        Record.create("我要退款".encode(), modality="text", label=None, source="t", license="MIT"),
        Record.create(b"password reset", modality="text", label=None, source="t", license="MIT"),
        Record.create(png, modality="image", label=None, source="mnist-5k", license="CC-BY-SA-3.0"),
    ]
    dataset = write_dataset_version(workspace, catalog, records, name="mixed", stage="clean")
    enqueue(catalog, dataset.id, [(records[0].id, Suggestion("refund", 0.55, "knn"))])
    enqueue(catalog, dataset.id, [(r.id, None) for r in records[1:]])
    submit(catalog, tasks(catalog)[0].id, "ana", "refund")
    return catalog, dataset


def test_jsonl_export_then_import(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    catalog, dataset = queued(sqlite_workspace)
    out = tmp_path / "tasks.jsonl"
    assert export_tasks(sqlite_workspace, catalog, dataset.id, out, fmt="jsonl") == 3
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["text"] == "我要退款" and rows[0]["label"] == "refund"
    assert rows[0]["suggestion"] == {"label": "refund", "confidence": 0.55}
    assert rows[2]["image"].startswith("data:image/png;base64,")
    assert base64.b64decode(rows[2]["image"].split(",", 1)[1])[:4] == b"\x89PNG"

    rows[1]["label"], rows[2]["label"] = "account", "3"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = import_labels(catalog, out, annotator="bo")
    assert (result.labels, result.tasks_created) == (3, 0)
    labels = {t.record_id: t.labels for t in tasks(catalog)}
    assert labels[rows[0]["id"]] == {"ana": "refund", "bo": "refund"}
    assert labels[rows[2]["id"]] == {"bo": "3"}


def test_label_studio_export_then_import_with_two_annotators(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    catalog, dataset = queued(sqlite_workspace)
    out = tmp_path / "ls.json"
    export_tasks(sqlite_workspace, catalog, dataset.id, out, fmt="label-studio")
    exported = json.loads(out.read_text(encoding="utf-8"))
    first = exported[0]
    assert first["data"]["text"] == "我要退款" and first["id"] == tasks(catalog)[0].id
    assert first["annotations"][0]["result"][0]["value"]["choices"] == ["refund"]
    assert first["predictions"][0]["score"] == 0.55
    # Label Studio hands back two people's choices per task (completed_by as id or e-mail).
    for task, (a, b) in zip(exported, [("refund", "refund"), ("account", "refund"), ("3", "3")], strict=True):
        key = "text" if "text" in task["data"] else "image"
        task["annotations"] = [
            {
                "completed_by": who,
                "result": [
                    {"type": "choices", "from_name": "label", "to_name": key, "value": {"choices": [label]}}
                ],
            }
            for who, label in [({"email": "ana@x"}, a), (7, b)]
        ]
    out.write_text(json.dumps(exported), encoding="utf-8")
    assert import_labels(catalog, out).labels == 6
    report = agreement(catalog)
    assert report.annotators == ["7", "ana", "ana@x"] and report.raters_per_item == 2


def test_import_queues_records_of_the_named_version(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    record = Record.create(b"where is my parcel", modality="text", label=None, source="t", license="MIT")
    dataset = write_dataset_version(sqlite_workspace, catalog, [record], name="t", stage="clean")
    file = tmp_path / "labels.jsonl"
    file.write_text(json.dumps({"id": record.id, "label": "shipping"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no annotation task"):
        import_labels(catalog, file)
    result = import_labels(catalog, file, workspace=sqlite_workspace, dataset_version_id=dataset.id)
    assert (result.labels, result.tasks_created) == (1, 1)
    file.write_text(json.dumps({"id": "f" * 64, "label": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="not in dataset version"):
        import_labels(catalog, file, workspace=sqlite_workspace, dataset_version_id=dataset.id)


def test_malformed_jsonl_names_every_bad_line(tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text(
        '{"id": "a", "label": "x"}\n'
        '{"id": "b", "label": \n'
        "[1, 2]\n"
        "\n"
        '{"label": "x"}\n'
        '{"id": "c", "label": 3}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as error:
        read_jsonl(file)
    message = error.value.message
    assert "4 malformed entries, nothing imported" in message
    for line in (
        f"{file}:2: not valid JSON",
        f"{file}:3: expected a JSON object",
        f'{file}:5: missing "id"',
        f'{file}:6: "label" must be',
    ):
        assert line in message


def test_malformed_label_studio_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "ls.json"
    file.write_text(
        '[\n {"id": 1, "data": {"text": "a", "genloop_id": "r1"}},\n'
        ' {"id": 2, "data": {"text": "b"}},\n'
        ' {"id": 3, "data": {"text": "c", "genloop_id": "r3"},\n'
        '  "annotations": [{"result": [{"value": {"choices": ["x", "y"]}}]}]}\n]\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as error:
        read_label_studio(file)
    assert f"{file}:3: task 2 has no data.genloop_id" in error.value.message
    assert f"{file}:4 (task 3): annotations[0].result needs value.choices with exactly one label" in (
        error.value.message
    )
    file.write_text('[\n {"id": 1,\n  "data": }\n]', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{file}:3: not valid JSON"):
        read_label_studio(file)
    with pytest.raises(DataError, match="no such file"):
        read_label_studio(tmp_path / "missing.json")

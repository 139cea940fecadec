"""The annotate stage: labels from sub-folders, class filtering, natural class order, lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.catalog.models import DatasetVersion
from genloop.config import AnnotateConfig, CleanConfig, CollectConfig
from genloop.data.annotate import AnnotateResult, annotate
from genloop.data.annotate.labels import natural_sorted
from genloop.data.clean import clean
from genloop.data.collect import collect
from genloop.errors import DataError
from genloop.workspace import Workspace


def write_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)).save(path)


def make_folder(ws: Workspace, files: list[str]) -> None:
    for seed, name in enumerate(files):
        write_png(ws.root / "data" / name, seed)


def collect_clean_annotate(ws: Workspace, cfg: AnnotateConfig) -> AnnotateResult:
    catalog = open_catalog(ws.database_url)
    collected = collect(ws, catalog, CollectConfig(source="folder", path="data", license="MIT"), name="t")
    cleaned = clean(ws, catalog, collected.dataset, CleanConfig())
    return annotate(ws, catalog, cleaned.dataset, cfg)


def test_labels_from_sub_folders_in_natural_order(sqlite_workspace: Workspace) -> None:
    make_folder(sqlite_workspace, ["10/a.png", "2/b.png", "1/c.png", "2/d.png", "loose.png"])
    result = collect_clean_annotate(sqlite_workspace, AnnotateConfig())
    assert result.classes == ["1", "2", "10"]
    assert result.dataset.manifest["classes"] == ["1", "2", "10"]
    assert result.dataset.manifest["labels"] == {"1": 1, "10": 1, "2": 2}
    assert result.report["dropped"] == {
        "no label": {
            "count": 1,
            "examples": ["data/loose.png: no label: put the file in a class sub-folder"],
        }
    }


def test_classes_filter_drops_other_labels_by_name(sqlite_workspace: Workspace) -> None:
    make_folder(sqlite_workspace, ["cat/a.png", "cat/b.png", "dog/c.png", "bird/d.png"])
    result = collect_clean_annotate(sqlite_workspace, AnnotateConfig(classes=["cat", "fish"]))
    assert result.classes == ["cat"]  # the classes that have records
    assert sorted(r.meta["path"] for r in result.dataset.iter_records()) == [
        "data/cat/a.png",
        "data/cat/b.png",
    ]
    dropped = result.report["dropped"]
    assert dropped["unknown label 'dog'"]["examples"] == [
        "data/dog/c.png: unknown label 'dog' (allowed: cat, fish)"
    ]
    assert dropped["unknown label 'bird'"]["count"] == 1


def test_nothing_labelled_is_an_error(sqlite_workspace: Workspace) -> None:
    make_folder(sqlite_workspace, ["a.png", "b.png"])
    with pytest.raises(DataError) as error:
        collect_clean_annotate(sqlite_workspace, AnnotateConfig())
    assert "nothing left after annotate" in error.value.message
    assert "data/a.png: no label" in error.value.message


def test_natural_sorted() -> None:
    assert natural_sorted(["img10", "img9", "Zebra", "apple", "10", "9"]) == [
        "9",
        "10",
        "apple",
        "img9",
        "img10",
        "Zebra",
    ]


def test_annotated_version_in_the_catalog(workspace: Workspace) -> None:
    catalog = open_catalog(workspace.database_url)
    collected = collect(workspace, catalog, CollectConfig(source="mnist-5k", limit=20), name="digits")
    cleaned = clean(workspace, catalog, collected.dataset, CleanConfig())
    result = annotate(workspace, catalog, cleaned.dataset, AnnotateConfig(classes=["1", "7"]))
    assert result.classes == ["1", "7"]
    assert result.dataset.manifest["records"] == 4
    with catalog.session() as session:
        row = session.get(DatasetVersion, result.dataset.id)
        assert row is not None
        assert (row.stage, row.parent_id, row.record_count) == ("annotate", cleaned.dataset.id, 4)
        assert row.manifest["classes"] == ["1", "7"]
        assert row.manifest["report"]["dropped"]["unknown label '0'"]["count"] == 2

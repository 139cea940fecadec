"""Bad input a user will have: broken files are dropped by name, an unusable folder says what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import clean
from genloop.data.collect import collect
from genloop.errors import DataError
from genloop.workspace import Workspace


def write_png(path: Path, seed: int, size: int = 16) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    return path.read_bytes()


def collect_folder(ws: Workspace, **changes: object) -> tuple[object, list[str]]:
    cfg = CollectConfig.model_validate(
        {"source": "folder", "path": "data/images", "license": "MIT", **changes}
    )
    result = collect(ws, open_catalog(ws.database_url), cfg, name="photos")
    return result.dataset, result.problems


def test_broken_files_are_dropped_each_with_its_file_named(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "images"
    good = [root / "cat" / "1.png", root / "cat" / "2.png", root / "dog" / "3.png"]
    for seed, path in enumerate(good):
        write_png(path, seed)
    whole = write_png(root / "dog" / "truncated.png", 9, size=64)
    (root / "dog" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "cat" / "notes.png").write_text("this is a text file, not a picture")

    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = CollectConfig(source="folder", path="data/images", license="MIT")
    collected = collect(sqlite_workspace, catalog, cfg, name="photos")
    assert collected.dataset.manifest["records"] == 6  # collect reads; judging is clean's job
    result = clean(sqlite_workspace, catalog, collected.dataset, CleanConfig())

    kept = sorted(r.meta["path"] for r in result.dataset.iter_records())
    assert kept == ["data/images/cat/1.png", "data/images/cat/2.png", "data/images/dog/3.png"]
    examples = sorted(e for counted in result.report["dropped"].values() for e in counted["examples"])
    assert len(examples) == 3 and sum(c["count"] for c in result.report["dropped"].values()) == 3
    empty, notes, truncated = examples
    assert empty == "data/images/cat/empty.png: empty file (0 bytes)"
    assert notes.startswith("data/images/cat/notes.png: undecodable image: cannot identify image file")
    assert truncated.startswith("data/images/dog/truncated.png: truncated image")
    assert result.report["kept"] == 3


def test_empty_folder_says_what_to_put_there(sqlite_workspace: Workspace) -> None:
    (sqlite_workspace.root / "data" / "images").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        collect_folder(sqlite_workspace)
    assert "nothing usable in data/images" in error.value.message
    assert error.value.hint is not None and "data/images/cat/001.png" in error.value.hint


def test_folder_of_unusable_files_lists_them(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "images"
    root.mkdir(parents=True)
    (root / "README.md").write_text("hello")
    write_png(root / "cat" / "huge.png", 1, size=64)
    with pytest.raises(DataError) as error:
        collect_folder(sqlite_workspace, max_file_bytes=100)
    message = error.value.message
    assert "nothing usable in data/images" in message
    assert "data/images/cat/huge.png" in message and "exceeds max_file_bytes (100 bytes)" in message
    assert "data/images/README.md" in message


def test_missing_folder_names_the_path(sqlite_workspace: Workspace) -> None:
    with pytest.raises(DataError) as error:
        collect_folder(sqlite_workspace, path="data/photos")
    assert "data/photos" in error.value.message and "does not exist" in error.value.message
    assert error.value.hint is not None and "sub-folder per class" in error.value.hint


def test_text_folder_that_is_empty_says_to_add_txt_files(sqlite_workspace: Workspace) -> None:
    (sqlite_workspace.root / "data" / "images").mkdir(parents=True)
    with pytest.raises(DataError) as error:
        collect_folder(sqlite_workspace, modality="text")
    assert error.value.hint is not None and ".txt" in error.value.hint

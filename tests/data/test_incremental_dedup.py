"""Incremental dedup: a new collection is deduplicated against every earlier clean of the dataset."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError
from genloop.workspace import Workspace
from support.mnist import digit_png, write_digit_files

OLD = range(0, 5000, 500)  # one digit of each class
NEW = range(250, 5000, 500)  # ten other digits


def collect_folder(ws: Workspace, folder: str) -> DatasetHandle:
    cfg = CollectConfig(source="folder", path=folder, license="CC-BY-SA-3.0", test_fraction=0.0)
    return collect(ws, open_catalog(ws.database_url), cfg, name="digits").dataset


def clean_collection(ws: Workspace, collection: DatasetHandle, cfg: CleanConfig | None = None) -> CleanResult:
    cfg = cfg or CleanConfig(incremental_dedup=True)
    return clean(ws, open_catalog(ws.database_url), collection, cfg, shard_size=4)


def kept_paths(result: CleanResult) -> list[str]:
    return sorted(r.meta["path"] for r in result.dataset.iter_records())


def index_file(ws: Workspace) -> Path:
    return ws.state_dir / "dedup" / "digits" / "index.parquet"


def first_then_second(ws: Workspace) -> tuple[CleanResult, DatasetHandle]:
    write_digit_files(ws.root / "first", OLD)
    first = clean_collection(ws, collect_folder(ws, "first"))
    write_digit_files(ws.root / "second", OLD)  # the same ten files again, under another folder...
    write_digit_files(ws.root / "second", NEW)  # ...and ten new ones
    return first, collect_folder(ws, "second")


def test_second_collection_drops_exactly_the_old_records(workspace: Workspace) -> None:
    first, second = first_then_second(workspace)
    assert first.report["kept"] == 10
    result = clean_collection(workspace, second)
    new_paths = sorted(f"second/{digit_png(i)[1]}/digit-{i:04d}.png" for i in NEW)
    assert kept_paths(result) == new_paths
    dropped = result.report["dropped"]
    assert list(dropped) == ["exact duplicate of an earlier version"]
    assert dropped["exact duplicate of an earlier version"]["count"] == 10
    old_ids = {r.meta["path"]: r.id for r in first.dataset.iter_records()}
    for example in dropped["exact duplicate of an earlier version"]["examples"]:  # the first five
        new_path, reason = example.split(": ", 1)
        old_path = new_path.replace("second/", "first/", 1)
        assert reason == (
            f"exact duplicate of {old_ids[old_path][:12]} ({old_path}) "
            f"in earlier dataset version {first.dataset.id}"
        )
    [step] = [s for s in result.report["steps"] if s["name"] == "incremental-dedup"]
    assert step["counters"] == {f"matched dataset version {first.dataset.id}": 10}


def test_re_cleaning_the_same_input_changes_nothing(sqlite_workspace: Workspace) -> None:
    first, second = first_then_second(sqlite_workspace)
    result = clean_collection(sqlite_workspace, second)
    rows = pq.read_table(index_file(sqlite_workspace)).num_rows
    assert rows == 20
    again = clean_collection(sqlite_workspace, second)
    assert again.dataset.id == result.dataset.id and again.report == result.report
    first_again = clean_collection(sqlite_workspace, collect_folder(sqlite_workspace, "first"))
    assert first_again.dataset.id == first.dataset.id and first_again.report["kept"] == 10
    index = pq.read_table(index_file(sqlite_workspace)).to_pydict()
    assert len(index["id"]) == rows  # each collection's rows replaced, never appended twice
    assert sorted(set(zip(index["version"], index["order"], strict=True))) == sorted(
        [(first.dataset.id, 0), (result.dataset.id, 1)]
    )


@pytest.mark.parametrize("hashed_before", [True, False], ids=["hashes-in-meta", "hashed-for-the-index"])
def test_near_duplicates_of_earlier_images_name_the_old_record(
    sqlite_workspace: Workspace, hashed_before: bool
) -> None:
    photo = Image.fromarray(load_sample_images().images[1])  # the flower
    crops = [photo.crop((x, 100, x + 160, 260)) for x in (0, 200, 400)]
    old, new = sqlite_workspace.root / "old" / "flower", sqlite_workspace.root / "new" / "flower"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    for i, crop in enumerate(crops[:2]):
        crop.save(old / f"{i}.png")
        crop.save(new / f"{i}.jpg", quality=80)  # re-encoded: other bytes, same picture
    crops[2].save(new / "2.png")
    first_cfg = CleanConfig.model_validate({"image": {"near_dup": hashed_before}, "incremental_dedup": True})
    first = clean_collection(sqlite_workspace, collect_folder(sqlite_workspace, "old"), first_cfg)
    assert pq.read_table(index_file(sqlite_workspace))["phash256"].null_count == 0
    result = clean_collection(sqlite_workspace, collect_folder(sqlite_workspace, "new"))
    assert kept_paths(result) == ["new/flower/2.png"]
    old_ids = {r.meta["path"]: r.id for r in first.dataset.iter_records()}
    examples = sorted(result.report["dropped"]["near-duplicate image of an earlier version"]["examples"])
    for i, example in enumerate(examples):
        assert example.startswith(f"new/flower/{i}.jpg: near-duplicate image (phash distance ")
        assert example.endswith(
            f") of {old_ids[f'old/flower/{i}.png'][:12]} (old/flower/{i}.png) "
            f"in earlier dataset version {first.dataset.id}"
        )


def test_a_failed_clean_leaves_the_index_as_it_was(sqlite_workspace: Workspace) -> None:
    write_digit_files(sqlite_workspace.root / "first", OLD)
    clean_collection(sqlite_workspace, collect_folder(sqlite_workspace, "first"))
    before = index_file(sqlite_workspace).read_bytes()
    write_digit_files(sqlite_workspace.root / "again", OLD[:5])  # a new collection, all of it old
    with pytest.raises(DataError, match="nothing left after clean"):
        clean_collection(sqlite_workspace, collect_folder(sqlite_workspace, "again"))
    assert index_file(sqlite_workspace).read_bytes() == before
    assert not list(index_file(sqlite_workspace).parent.glob("*.tmp"))


def test_switched_off_it_neither_drops_nor_indexes(sqlite_workspace: Workspace) -> None:
    off = CleanConfig()  # the default
    _, second = first_then_second(sqlite_workspace)
    assert index_file(sqlite_workspace).is_file()
    index_file(sqlite_workspace).unlink()
    assert clean_collection(sqlite_workspace, second, off).report["kept"] == 20
    assert not index_file(sqlite_workspace).exists()


def test_an_unreadable_index_says_what_to_do(sqlite_workspace: Workspace) -> None:
    write_digit_files(sqlite_workspace.root / "first", OLD)
    collection = collect_folder(sqlite_workspace, "first")
    index_file(sqlite_workspace).parent.mkdir(parents=True)
    index_file(sqlite_workspace).write_bytes(b"not parquet")
    with pytest.raises(DataError) as error:
        clean_collection(sqlite_workspace, collection)
    assert "incremental dedup index cannot be read" in error.value.message
    assert "incremental_dedup = false" in (error.value.hint or "")

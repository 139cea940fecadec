"""`hf-disk` source: datasets saved with `save_to_disk`, read with pyarrow alone.

The fixtures write the files the `datasets` library writes (state.json,
dataset_info.json, Arrow IPC stream shards with the `huggingface` schema metadata,
dataset_dict.json and a folder per split); when `datasets` is importable, one test
also reads a folder it wrote itself.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.config import CollectConfig
from genloop.data.collect import collect
from genloop.data.record import Record
from genloop.data.sources.registry import get_source, known_sources
from genloop.errors import ConfigError, DataError
from genloop.pipeline.fingerprint import source_fingerprint
from genloop.workspace import Workspace

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def save_dataset(
    folder: Path,
    columns: dict[str, list[Any]],
    features: dict[str, Any],
    *,
    split: str | None = "train",
    shards: int = 1,
    batch_rows: int = 2,
    types: dict[str, pa.DataType] | None = None,
    license: str = "",
) -> None:
    """What `Dataset.save_to_disk` writes: Arrow stream shards, state.json, dataset_info.json."""
    folder.mkdir(parents=True, exist_ok=True)
    types = types or {}
    table = pa.table({name: pa.array(values, type=types.get(name)) for name, values in columns.items()})
    hf_meta = {"info": {"features": features}}
    table = table.replace_schema_metadata({"huggingface": json.dumps(hf_meta)})
    per_shard = -(-table.num_rows // shards)
    data_files = []
    for i in range(shards):
        name = f"data-{i:05d}-of-{shards:05d}.arrow"
        with pa.ipc.new_stream(folder / name, table.schema) as writer:
            for batch in table.slice(i * per_shard, per_shard).to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
        data_files.append({"filename": name})
    state: dict[str, Any] = {
        "_data_files": data_files,
        "_fingerprint": "0123456789abcdef",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    info = {"citation": "", "description": "", "features": features, "homepage": "", "license": license}
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")


def save_dataset_dict(
    folder: Path, splits: dict[str, dict[str, list[Any]]], features: dict[str, Any]
) -> None:
    for name, columns in splits.items():
        save_dataset(folder / name, columns, features, split=name)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}), encoding="utf-8")


TEXT_FEATURES = {
    "text": {"dtype": "string", "_type": "Value"},
    "label": {"names": ["neg", "pos"], "_type": "ClassLabel"},
}


def png(color: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


def hf_cfg(path: str | None = "data/hf", **changes: object) -> CollectConfig:
    base = {"source": "hf-disk", "path": path, "modality": "text", "license": "CC0-1.0"}
    return CollectConfig.model_validate(base | changes)


def read(ws: Workspace, cfg: CollectConfig) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    return list(get_source("hf-disk")(ws, cfg, problems)), problems


def test_registered() -> None:
    assert "hf-disk" in known_sources()


def test_dataset_dict_text_with_class_labels_and_named_splits(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset_dict(
        root,
        {
            "train": {"text": ["good film", "bad film", "great acting"], "label": [1, 0, 1]},
            "test": {"text": ["awful plot"], "label": [0]},
            "validation": {"text": ["unlabelled one"], "label": [-1]},
        },
        TEXT_FEATURES,
    )
    records, problems = read(sqlite_workspace, hf_cfg())
    assert problems == []
    assert [r.payload.decode() for r in records] == [
        "good film",
        "bad film",
        "great acting",
        "awful plot",
        "unlabelled one",
    ]
    assert [r.label for r in records] == ["pos", "neg", "pos", "neg", None]
    assert [r.split for r in records] == ["train", "train", "train", "test", "test"]
    assert records[0].modality == "text"
    assert records[0].source == "hf-disk:data/hf"
    assert records[0].license == "CC0-1.0"
    assert records[3].meta == {"path": "data/hf/test/data-00000-of-00001.arrow", "row": 1, "hf_split": "test"}


def test_explicit_test_fraction_splits_by_hash_instead(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    texts = [f"sentence number {i}" for i in range(200)]
    save_dataset_dict(root, {"train": {"text": texts[:100]}, "test": {"text": texts[100:]}}, {})
    by_name, _ = read(sqlite_workspace, hf_cfg())
    assert sum(r.split == "test" for r in by_name) == 100
    hashed, _ = read(sqlite_workspace, hf_cfg(test_fraction=0.5))
    expected = [
        Record.create(t.encode(), modality="text", label=None, source="", license="", test_fraction=0.5)
        for t in texts
    ]
    assert [r.split for r in hashed] == [r.split for r in expected]
    assert 50 < sum(r.split == "test" for r in hashed) < 150


def test_single_dataset_many_shards_and_batches_streams_and_honours_limit(
    sqlite_workspace: Workspace,
) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    texts = [f"line {i}" for i in range(10)]
    save_dataset(root, {"text": texts, "idx": list(range(10))}, {}, shards=3, batch_rows=2, split=None)
    records, problems = read(sqlite_workspace, hf_cfg())
    assert [r.payload.decode() for r in records] == texts
    assert records[5].meta["idx"] == 5
    assert records[4].meta["path"] == "data/hf/data-00001-of-00003.arrow"
    assert problems == []
    limited, _ = read(sqlite_workspace, hf_cfg(limit=4))
    assert [r.payload.decode() for r in limited] == texts[:4]


def test_image_feature_struct_bytes_and_path(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    root.mkdir(parents=True)
    (root / "loose.png").write_bytes(png(200))
    images = [
        {"bytes": png(0), "path": None},
        {"bytes": None, "path": "loose.png"},
        {"bytes": None, "path": None},
    ]
    features = {
        "img": {"_type": "Image"},
        "label": {"names": ["zero", "one", "two"], "_type": "ClassLabel"},
    }
    save_dataset(root, {"img": images, "label": [0, 2, 1]}, features, types={"img": IMAGE_TYPE})
    cfg = hf_cfg(modality="image")  # no columns: the Image feature "img" is found
    records, problems = read(sqlite_workspace, cfg)
    assert [r.payload for r in records] == [png(0), png(200)]
    assert [r.label for r in records] == ["zero", "two"]
    assert [r.modality for r in records] == ["image", "image"]
    assert len(problems) == 1 and "data/hf/data-00000-of-00001.arrow:row 3" in problems[0]
    assert "neither bytes nor a path" in problems[0]
    explicit, _ = read(sqlite_workspace, hf_cfg(modality="image", columns={"image": "img"}))
    assert [r.payload for r in explicit] == [png(0), png(200)]


def test_column_mapping_id_license_and_meta(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset(
        root,
        {
            "body": ["hello there", "general kenobi"],
            "uid": ["a1", "b2"],
            "lic": ["MIT", None],
            "stars": [5, 3],
        },
        {},
        license="Apache-2.0",
    )
    cfg = hf_cfg(license=None, columns={"text": "body", "id": "uid", "license": "lic"})
    records, problems = read(sqlite_workspace, cfg)
    assert problems == []
    assert [r.license for r in records] == ["MIT", "Apache-2.0"]  # row license, else dataset_info's
    assert records[0].meta == {
        "path": "data/hf/data-00000-of-00001.arrow",
        "row": 1,
        "hf_split": "train",
        "stars": 5,
        "source_id": "a1",
    }


def test_missing_mapped_column_names_the_file_and_columns(sqlite_workspace: Workspace) -> None:
    save_dataset(sqlite_workspace.root / "data" / "hf", {"sentence": ["a b c"]}, {})
    with pytest.raises(DataError) as info:
        read(sqlite_workspace, hf_cfg())
    message = str(info.value)
    assert "data/hf/data-00000-of-00001.arrow" in message
    assert "no column 'text'" in message and "sentence" in message


def test_out_of_range_class_label_is_one_problem_and_the_rest_is_kept(sqlite_workspace: Workspace) -> None:
    save_dataset(
        sqlite_workspace.root / "data" / "hf",
        {"text": ["one", "two", "three"], "label": [0, 7, 1]},
        TEXT_FEATURES,
    )
    records, problems = read(sqlite_workspace, hf_cfg())
    assert [r.label for r in records] == ["neg", "pos"]
    assert problems == [
        "data/hf/data-00000-of-00001.arrow:row 2: label 7 is outside the ClassLabel names (0–1); skipped"
    ]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("no-folder", "does not exist"),
        ("empty-folder", "neither dataset_dict.json nor state.json"),
        ("no-data-file", "data file(s) listed in state.json are missing: data-00000-of-00001.arrow"),
        ("no-split-folder", "no folder for split 'test' listed in dataset_dict.json"),
        ("bad-state", "no `_data_files` list"),
    ],
)
def test_broken_layouts_name_the_folder_and_what_is_missing(
    sqlite_workspace: Workspace, breakage: str, expected: str
) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    if breakage == "empty-folder":
        root.mkdir(parents=True)
    elif breakage == "no-data-file":
        save_dataset(root, {"text": ["x"]}, {})
        (root / "data-00000-of-00001.arrow").unlink()
    elif breakage == "no-split-folder":
        save_dataset(root / "train", {"text": ["x"]}, {})
        (root / "dataset_dict.json").write_text('{"splits": ["train", "test"]}', encoding="utf-8")
    elif breakage == "bad-state":
        save_dataset(root, {"text": ["x"]}, {})
        (root / "state.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read(sqlite_workspace, hf_cfg())
    assert expected in str(info.value)
    assert "hf" in str(info.value)


def test_no_path_is_a_config_error(sqlite_workspace: Workspace) -> None:
    with pytest.raises(ConfigError, match=r"\[collect\].path is not set"):
        read(sqlite_workspace, hf_cfg(path=None))


def test_truncated_shard_keeps_the_rows_before_and_reports_the_row(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset(root, {"text": [f"row {i}" for i in range(6)]}, {}, batch_rows=2)
    shard = root / "data-00000-of-00001.arrow"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) - 60])
    records, problems = read(sqlite_workspace, hf_cfg())
    assert 2 <= len(records) < 6
    assert [r.payload.decode() for r in records] == [f"row {i}" for i in range(len(records))]
    assert any("data-00000-of-00001.arrow:row" in p and "rest of the shard" in p for p in problems)


def test_not_an_arrow_shard_is_refused_by_name(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset(root, {"text": ["a", "b"]}, {}, shards=2, batch_rows=1)
    (root / "data-00001-of-00002.arrow").write_bytes(b"this is not arrow at all")
    records, problems = read(sqlite_workspace, hf_cfg())
    assert [r.payload.decode() for r in records] == ["a"]
    assert any(
        p.startswith("data/hf/data-00001-of-00002.arrow: not a readable Arrow shard") for p in problems
    )


def test_features_from_schema_metadata_when_dataset_info_is_missing(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset(root, {"text": ["a", "b"], "label": [1, 0]}, TEXT_FEATURES)
    (root / "dataset_info.json").unlink()
    records, _ = read(sqlite_workspace, hf_cfg())
    assert [r.label for r in records] == ["pos", "neg"]


def test_collect_and_fingerprint(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset_dict(
        root,
        {"train": {"text": ["a b", "c d"], "label": [0, 1]}, "test": {"text": ["e f"], "label": [1]}},
        TEXT_FEATURES,
    )
    catalog = open_catalog(sqlite_workspace.database_url)
    cfg = hf_cfg()
    result = collect(sqlite_workspace, catalog, cfg, name="hf")
    assert result.dataset.manifest["records"] == 3
    before = source_fingerprint(sqlite_workspace, cfg)
    assert before == source_fingerprint(sqlite_workspace, cfg)
    time.sleep(0.01)
    save_dataset(root / "test", {"text": ["e f", "g h"], "label": [1, 0]}, TEXT_FEATURES, split="test")
    assert source_fingerprint(sqlite_workspace, cfg) != before


def test_a_folder_written_by_the_datasets_library(sqlite_workspace: Workspace) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
            "img": datasets.Image(),
        }
    )
    data: dict[str, list[Any]] = {
        "text": ["good", "bad"],
        "label": [1, 0],
        "img": [Image.new("L", (4, 4), 9), Image.new("L", (4, 4), 99)],
    }
    train = datasets.Dataset.from_dict(data, features=features)
    test = datasets.Dataset.from_dict({k: v[:1] for k, v in data.items()}, features=features)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(
        str(sqlite_workspace.root / "data" / "hf")
    )
    records, _ = read(sqlite_workspace, hf_cfg(columns={"text": "text"}))
    assert [(r.payload.decode(), r.label, r.split) for r in records] == [
        ("good", "pos", "train"),
        ("bad", "neg", "train"),
        ("good", "pos", "test"),
    ]
    images, _ = read(sqlite_workspace, hf_cfg(modality="image"))
    assert Image.open(io.BytesIO(images[1].payload)).getpixel((0, 0)) == 99


def test_arrow_file_format_shard_is_read_too(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "hf"
    save_dataset(root, {"text": ["x"]}, {})
    table = pa.table({"text": ["from an arrow file", "second"]})
    with pa.ipc.new_file(root / "data-00000-of-00001.arrow", table.schema) as writer:
        writer.write_table(table, max_chunksize=1)
    records, problems = read(sqlite_workspace, hf_cfg())
    assert problems == []
    assert [r.payload.decode() for r in records] == ["from an arrow file", "second"]

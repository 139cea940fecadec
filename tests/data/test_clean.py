"""The clean stage on real files: blanks, duplicates, bombs, encodings, the report and lineage."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.catalog.models import DatasetVersion
from genloop.config import CleanConfig, CollectConfig
from genloop.data.clean import CleanResult, clean
from genloop.data.collect import collect
from genloop.data.pipeline import Reason, reason_kind
from genloop.data.steps.text import normalize_text
from genloop.errors import DataError
from genloop.workspace import Workspace


def write_image(path: Path, pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format=fmt)
    return path.read_bytes()


def noise(seed: int, shape: tuple[int, ...] = (16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape)


def collect_and_clean(
    ws: Workspace, cleaning: CleanConfig | None = None, **collecting: object
) -> CleanResult:
    catalog = open_catalog(ws.database_url)
    cfg = CollectConfig.model_validate({"source": "folder", "path": "data", "license": "MIT", **collecting})
    collected = collect(ws, catalog, cfg, name="test")
    return clean(ws, catalog, collected.dataset, cleaning or CleanConfig(), shard_size=2)


def kept_paths(result: CleanResult) -> list[str]:
    return sorted(r.meta["path"] for r in result.dataset.iter_records())


def test_blank_and_low_contrast_images_are_dropped(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data"
    write_image(root / "a" / "noise.png", noise(1))
    write_image(root / "a" / "black.png", np.zeros((16, 16)))
    write_image(root / "a" / "grey.png", np.full((16, 16), 128))
    write_image(root / "b" / "faint.png", 100 + (np.arange(256).reshape(16, 16) % 2))  # std 0.5
    result = collect_and_clean(sqlite_workspace)
    assert kept_paths(result) == ["data/a/noise.png"]
    blank = result.report["dropped"]["blank image"]
    assert blank["count"] == 3
    assert sorted(blank["examples"]) == [
        "data/a/black.png: blank image (std=0.0 < 2.0)",
        "data/a/grey.png: blank image (std=0.0 < 2.0)",
        "data/b/faint.png: blank image (std=0.5 < 2.0)",
    ]


def test_duplicates_across_sub_folders_name_the_first_file(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data"
    original = write_image(root / "cat" / "a.png", noise(1))
    (root / "dog").mkdir()
    (root / "dog" / "copy.png").write_bytes(original)
    (root / "zebra").mkdir()
    (root / "zebra" / "copy2.png").write_bytes(original)  # shard_size=2: a later batch than the first
    write_image(root / "dog" / "b.png", noise(2))
    result = collect_and_clean(sqlite_workspace)
    assert kept_paths(result) == ["data/cat/a.png", "data/dog/b.png"]
    first_id = hashlib.sha256(original).hexdigest()[:12]
    assert result.report["dropped"]["exact duplicate"] == {
        "count": 2,
        "examples": [
            f"data/dog/copy.png: exact duplicate of {first_id} (data/cat/a.png)",
            f"data/zebra/copy2.png: exact duplicate of {first_id} (data/cat/a.png)",
        ],
    }


def test_decompression_bomb_guard_uses_the_header_only(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data"
    write_image(root / "x" / "small.png", noise(1, (10, 10)))
    write_image(root / "x" / "huge.png", noise(2, (100, 120)))
    result = collect_and_clean(sqlite_workspace, CleanConfig(max_image_pixels=5000))
    assert kept_paths(result) == ["data/x/small.png"]
    assert result.report["dropped"]["image too large"]["examples"] == [
        "data/x/huge.png: image too large: 120×100 pixels > 5,000 (max_image_pixels)"
    ]


def test_non_png_images_become_png_but_keep_their_original_id(sqlite_workspace: Workspace) -> None:
    original = write_image(sqlite_workspace.root / "data" / "x" / "photo.jpg", noise(1, (16, 16, 3)), "JPEG")
    [record] = collect_and_clean(sqlite_workspace).dataset.records()
    assert record.id == hashlib.sha256(original).hexdigest()
    assert record.payload.startswith(b"\x89PNG")
    assert (record.meta["format"], record.meta["width"], record.meta["height"]) == ("JPEG", 16, 16)
    assert Image.open(io.BytesIO(record.payload)).mode == "RGB"


def test_utf8_bom_gbk_and_utf16_texts_all_decode(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data"
    root.mkdir()
    (root / "utf8.txt").write_bytes("café 你好".encode())
    (root / "bom.txt").write_bytes(b"\xef\xbb\xbf" + b"with a BOM")
    (root / "gbk.txt").write_bytes("床前明月光，疑是地上霜".encode("gbk"))
    (root / "utf16.txt").write_bytes("from Notepad".encode("utf-16"))
    write_image(root / "picture.txt", noise(1))  # binary: NUL bytes (and GB18030 takes most bytes)
    (root / "latin1.txt").write_bytes("naïve".encode("latin-1") + b"\x80")
    (root / "short.txt").write_bytes(b"  ok \n")
    result = collect_and_clean(sqlite_workspace, CleanConfig(min_text_chars=3), modality="text")
    texts = {r.meta["path"]: (r.payload.decode("utf-8"), r.meta) for r in result.dataset.iter_records()}
    assert {path: text for path, (text, _) in texts.items()} == {
        "data/utf8.txt": "café 你好",
        "data/bom.txt": "with a BOM",
        "data/gbk.txt": "床前明月光,疑是地上霜",  # NFKC folds the full-width comma
        "data/utf16.txt": "from Notepad",
    }
    assert texts["data/gbk.txt"][1]["notes"] == ["decoded as GB18030, stored as UTF-8"]
    assert texts["data/bom.txt"][1]["encoding"] == "utf-8-sig"
    dropped = result.report["dropped"]
    assert dropped["undecodable text"]["examples"] == [
        "data/latin1.txt: undecodable text: not UTF-8 or GB18030 (byte 0xef at offset 2)",
        "data/picture.txt: undecodable text: binary file (contains NUL bytes)",
    ]
    assert dropped["too short"]["examples"] == ["data/short.txt: too short (2 chars < 3)"]


def test_normalize_text() -> None:
    assert normalize_text("\ufeffＨｅｌｌｏ\u3000 world\t \r\n\r\n\r\n\n  bye\x07  ") == "Hello world\n\nbye"


def test_reason_kinds() -> None:
    assert reason_kind("blank image (std=0.0 < 2.0)") == "blank image"
    assert reason_kind("undecodable image: cannot identify image file") == "undecodable image"
    assert reason_kind("truncated image") == "truncated image"
    duplicate = Reason("exact duplicate of 3f2a (a.png)", kind="exact duplicate")
    assert reason_kind(duplicate) == "exact duplicate"
    assert reason_kind(pickle.loads(pickle.dumps(duplicate))) == "exact duplicate"  # crosses processes


def test_clean_version_records_lineage_and_report(workspace: Workspace) -> None:
    catalog = open_catalog(workspace.database_url)
    collected = collect(workspace, catalog, CollectConfig(source="mnist-5k", limit=30), name="digits")
    result = clean(workspace, catalog, collected.dataset, CleanConfig())
    manifest = result.dataset.manifest
    assert (manifest["stage"], manifest["parent"], manifest["records"]) == ("clean", collected.dataset.id, 30)
    assert manifest["report"] == result.report
    assert result.report["kept"] == 30 and result.report["dropped"] == {}
    assert [s["name"] for s in result.report["steps"]] == [
        "image-size",
        "decode-image",
        "normalize-image",
        "blank-image",
        "image-phash",
        "exact-dedup",
        "image-near-dup",
    ]
    with catalog.session() as session:
        row = session.get(DatasetVersion, result.dataset.id)
        assert row is not None and row.parent_id == collected.dataset.id
        assert row.manifest["report"]["kept"] == 30


def test_nothing_left_after_cleaning_is_an_error_naming_the_files(sqlite_workspace: Workspace) -> None:
    write_image(sqlite_workspace.root / "data" / "a" / "black.png", np.zeros((8, 8)))
    with pytest.raises(DataError) as error:
        collect_and_clean(sqlite_workspace)
    assert "nothing left after clean" in error.value.message
    assert "data/a/black.png: blank image" in error.value.message

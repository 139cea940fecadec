"""`idx` (the user's MNIST-format files) and `fashion-mnist` (Debian's copy)."""

from __future__ import annotations

import gzip
import io
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources import idx as idx_module
from genloop.data.sources.registry import get_source
from genloop.errors import DataError
from genloop.pipeline.fingerprint import source_fingerprint
from genloop.workspace import Workspace


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding: 0, 0, dtype 0x08 (ubyte), ndim, big-endian dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_pair(folder: Path, prefix: str, count: int, *, gz: bool, seed: int = 0) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = np.arange(count, dtype=np.uint8) % 10
    suffix = ".gz" if gz else ""
    opener = gzip.compress if gz else (lambda b: b)
    (folder / f"{prefix}-images-idx3-ubyte{suffix}").write_bytes(opener(idx_bytes(images)))
    (folder / f"{prefix}-labels-idx1-ubyte{suffix}").write_bytes(opener(idx_bytes(labels)))
    return images


def read(ws: Workspace, cfg: CollectConfig) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    return list(get_source(cfg.source)(ws, cfg, problems)), problems


def pixels(record: Record) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(record.payload)))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_file_with_its_labels(sqlite_workspace: Workspace, gz: bool) -> None:
    images = write_pair(sqlite_workspace.root / "data", "train", 12, gz=gz)
    name = "data/train-images-idx3-ubyte" + (".gz" if gz else "")
    records, problems = read(sqlite_workspace, CollectConfig(source="idx", path=name, license="CC0-1.0"))
    assert problems == []
    assert [r.label for r in records] == [str(i % 10) for i in range(12)]
    assert np.array_equal(pixels(records[3]), images[3])
    assert records[3].meta == {"path": name, "index": 3}
    assert {(r.source, r.license, r.modality) for r in records} == {(f"idx:{name}", "CC0-1.0", "image")}


def test_idx_folder_reads_every_pair_up_to_the_limit(sqlite_workspace: Workspace) -> None:
    write_pair(sqlite_workspace.root / "data", "t10k", 5, gz=True, seed=1)
    write_pair(sqlite_workspace.root / "data", "train", 5, gz=True, seed=2)
    records, _ = read(sqlite_workspace, CollectConfig(source="idx", path="data"))
    assert Counter(Path(r.meta["path"]).name for r in records) == {
        "t10k-images-idx3-ubyte.gz": 5,
        "train-images-idx3-ubyte.gz": 5,
    }
    limited, _ = read(sqlite_workspace, CollectConfig(source="idx", path="data", limit=7))
    assert len(limited) == 7


def test_truncated_images_file_keeps_the_whole_images(sqlite_workspace: Workspace) -> None:
    folder = sqlite_workspace.root / "data"
    write_pair(folder, "train", 6, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[: 16 + 28 * 28 * 4 + 100])  # 4 whole images and a bit
    records, problems = read(
        sqlite_workspace, CollectConfig(source="idx", path="data/train-images-idx3-ubyte")
    )
    assert len(records) == 4
    assert problems == [
        "data/train-images-idx3-ubyte: image 4: file ends early; header says 6 images (truncated); "
        "rest of file skipped"
    ]


def test_missing_labels_and_non_idx_files(sqlite_workspace: Workspace) -> None:
    folder = sqlite_workspace.root / "data"
    write_pair(folder, "train", 3, gz=False)
    (folder / "train-labels-idx1-ubyte").unlink()
    (folder / "notes-images.txt").write_text("not pixels")
    records, problems = read(sqlite_workspace, CollectConfig(source="idx", path="data"))
    assert [r.label for r in records] == [None, None, None]
    assert problems[1] == (
        "data/notes-images.txt: not an IDX file (starts with 6e6f7420, expected 0000 08 ..); file skipped"
    )
    assert problems[2].startswith("data/train-images-idx3-ubyte: no labels file beside it")
    with pytest.raises(DataError, match=r"no images read from data/notes-images\.txt"):
        read(sqlite_workspace, CollectConfig(source="idx", path="data/notes-images.txt"))


def test_fashion_mnist_limit_200(sqlite_workspace: Workspace) -> None:
    records, problems = read(sqlite_workspace, CollectConfig(source="fashion-mnist", limit=200))
    assert len(records) == 200 and problems == []
    assert set(Counter(r.label for r in records)) == set(idx_module.FASHION_MNIST_CLASSES)
    first = records[0]
    assert (first.source, first.license, first.modality) == ("fashion-mnist", "MIT", "image")
    assert first.label == "Ankle boot"  # the first training image of Fashion-MNIST is class 9
    assert "Debian dataset-fashion-mnist" in first.meta["provenance"]
    assert pixels(first).shape == (28, 28) and pixels(first).std() > 30


def test_fashion_mnist_missing_prints_the_install_command(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError) as caught:
        read(sqlite_workspace, CollectConfig(source="fashion-mnist", limit=5))
    assert "apt-get install -y dataset-fashion-mnist" in str(caught.value.hint)


def test_fingerprints_of_idx_sources(sqlite_workspace: Workspace) -> None:
    write_pair(sqlite_workspace.root / "data", "train", 3, gz=True)
    cfg = CollectConfig(source="idx", path="data")
    before = source_fingerprint(sqlite_workspace, cfg)
    write_pair(sqlite_workspace.root / "data", "t10k", 3, gz=True)
    assert source_fingerprint(sqlite_workspace, cfg) != before
    fashion = source_fingerprint(sqlite_workspace, CollectConfig(source="fashion-mnist"))
    assert fashion.startswith("fashion-mnist@") and fashion == source_fingerprint(
        sqlite_workspace, CollectConfig(source="fashion-mnist")
    )

"""`idx` and `fashion-mnist`: grey images in the MNIST IDX format, streamed image by image.

An IDX file is a 4-byte magic (0, 0, dtype, number of dimensions), one big-endian
uint32 per dimension, then the raw array: images are (n, rows, cols) uint8 after a
16-byte header, labels (n,) uint8 after 8 bytes. Files may be gzipped (`.gz`).

`idx` reads the user's files: `path` is an images file (its labels file is found by
the usual name, `...-images-idx3-ubyte` -> `...-labels-idx1-ubyte`) or a folder of
them. `fashion-mnist` reads the 70,000 images Debian ships in
`dataset-fashion-mnist` (train first, then t10k). Images are read one at a time, so
memory holds one image plus the (small) label array, not 47 MB of pixels.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from genloop.config import CollectConfig
from genloop.data.record import Record
from genloop.data.sources.folder import _display_path
from genloop.data.sources.mnist import png_bytes
from genloop.data.sources.registry import register_source
from genloop.errors import ConfigError, DataError
from genloop.workspace import Workspace

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train", "t10k")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_LICENSE = "MIT"
FASHION_MNIST_PROVENANCE = "Fashion-MNIST (Zalando Research) via Debian dataset-fashion-mnist"
UBYTE = 0x08


class IdxError(Exception):
    """The file is not a usable IDX file; the message says why."""


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[return-value]


def read_header(handle: BinaryIO) -> tuple[int, ...]:
    """The array shape from an IDX header; IdxError unless it is unsigned bytes."""
    magic = handle.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0":
        raise IdxError(f"not an IDX file (starts with {magic.hex() or 'nothing'}, expected 0000 08 ..)")
    dtype, ndim = magic[2], magic[3]
    if dtype != UBYTE:
        raise IdxError(f"IDX data type 0x{dtype:02x} is not supported (only unsigned bytes, 0x08)")
    dims = handle.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise IdxError("header ends early (truncated file)")
    return struct.unpack(f">{ndim}I", dims)


def read_labels(path: Path) -> np.ndarray:
    """(n,) uint8 labels of an IDX1 file."""
    with _open(path) as handle:
        shape = read_header(handle)
        if len(shape) != 1:
            raise IdxError(f"labels file has {len(shape)} dimensions, expected 1")
        labels = np.frombuffer(handle.read(shape[0]), dtype=np.uint8)
    if len(labels) < shape[0]:
        raise IdxError(f"header says {shape[0]} labels, file holds {len(labels)} (truncated)")
    return labels


def iter_images(path: Path) -> Iterator[np.ndarray]:
    """(rows, cols) uint8 images of an IDX3 file, one read per image; IdxError when truncated."""
    with _open(path) as handle:
        shape = read_header(handle)
        if len(shape) != 3:
            raise IdxError(f"images file has {len(shape)} dimensions, expected 3 (n, rows, cols)")
        count, rows, cols = shape
        for index in range(count):
            chunk = handle.read(rows * cols)
            if len(chunk) < rows * cols:
                raise IdxError(f"image {index}: file ends early; header says {count} images (truncated)")
            yield np.frombuffer(chunk, dtype=np.uint8).reshape(rows, cols)


def labels_path_for(images: Path) -> Path | None:
    """`train-images-idx3-ubyte.gz` -> `train-labels-idx1-ubyte.gz`, when that file exists."""
    name = images.name.replace("images-idx3", "labels-idx1").replace("images", "labels")
    candidate = images.with_name(name)
    return candidate if candidate != images and candidate.is_file() else None


def _images_files(workspace: Workspace, cfg: CollectConfig) -> list[Path]:
    if not cfg.path:
        raise ConfigError(
            "[collect].path is not set; the `idx` source needs an IDX images file or a folder of them",
            hint='add `path = "data/train-images-idx3-ubyte.gz"` under [collect] in genloop.toml',
        )
    root = workspace.resolve_user_path(cfg.path)
    if root.is_file():
        return [root]
    if root.is_dir():
        return sorted(p for p in root.iterdir() if p.is_file() and "images" in p.name)
    raise DataError(
        f"[collect].path {cfg.path} ({root}) does not exist",
        hint="point it at an IDX images file (e.g. train-images-idx3-ubyte.gz) or the folder holding it",
    )


def idx_records(
    images: Path,
    shown: str,
    *,
    cfg: CollectConfig,
    source: str,
    license: str,
    class_names: tuple[str, ...] | None,
    provenance: str | None,
    problems: list[str],
    limit: int | None,
) -> Iterator[Record]:
    """Records of one images file (with its labels when found); problems name the file and image."""
    labels_file = labels_path_for(images)
    labels = None
    try:
        labels = read_labels(labels_file) if labels_file else None
    except (IdxError, OSError, EOFError) as exc:
        problems.append(f"{labels_file}: {exc}; images from {shown} are unlabelled")
    if labels_file is None:
        problems.append(f"{shown}: no labels file beside it (expected ...labels-idx1-ubyte); unlabelled")
    meta_base = {"path": shown} | ({"provenance": provenance} if provenance else {})
    index = -1
    try:
        for index, pixels in enumerate(iter_images(images)):
            if limit is not None and index >= limit:
                return
            label = None
            if labels is not None and index < len(labels):
                value = int(labels[index])
                label = class_names[value] if class_names and value < len(class_names) else str(value)
            yield Record.create(
                png_bytes(pixels),
                modality="image",
                label=label,
                source=source,
                license=license,
                test_fraction=cfg.test_fraction,
                meta=meta_base | {"index": index},
            )
    except (IdxError, OSError, EOFError) as exc:  # gzip raises EOFError/BadGzipFile when cut short
        problems.append(f"{shown}: {exc}; {'rest of file' if index >= 0 else 'file'} skipped")


@register_source("idx")
def idx(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    yielded = 0
    for images in _images_files(workspace, cfg):
        remaining = None if cfg.limit is None else cfg.limit - yielded
        shown = _display_path(workspace, images)
        for record in idx_records(
            images,
            shown,
            cfg=cfg,
            source=f"idx:{cfg.path}",
            license=cfg.license or "unknown",
            class_names=None,
            provenance=None,
            problems=problems,
            limit=remaining,
        ):
            yield record
            yielded += 1
        if cfg.limit is not None and yielded >= cfg.limit:
            return
    if yielded == 0:
        details = "".join(f"\n  {problem}" for problem in problems)
        raise DataError(
            f"no images read from {cfg.path}{details}",
            hint="point [collect].path at an MNIST-format file such as train-images-idx3-ubyte.gz",
        )


def fashion_mnist_files(directory: Path | None = None) -> list[Path]:
    """Debian's images files, train then t10k; DataError with the install line when absent."""
    directory = directory or FASHION_MNIST_DIR
    files = [directory / f"{part}-images-idx3-ubyte.gz" for part in FASHION_MNIST_FILES]
    missing = [f for f in files if not f.is_file() or labels_path_for(f) is None]
    if missing:
        raise DataError(
            f"Fashion-MNIST is not installed: {missing[0]} (or its labels file) is missing",
            hint="install Debian's copy (31 MB, MIT): sudo apt-get install -y dataset-fashion-mnist",
        )
    return files


@register_source("fashion-mnist")
def fashion_mnist(workspace: Workspace, cfg: CollectConfig, problems: list[str]) -> Iterator[Record]:
    yielded = 0
    for images in fashion_mnist_files():
        remaining = None if cfg.limit is None else cfg.limit - yielded
        for record in idx_records(
            images,
            images.as_posix(),
            cfg=cfg,
            source="fashion-mnist",
            license=FASHION_MNIST_LICENSE,
            class_names=FASHION_MNIST_CLASSES,
            provenance=FASHION_MNIST_PROVENANCE,
            problems=problems,
            limit=remaining,
        ):
            yield record
            yielded += 1
        if cfg.limit is not None and yielded >= cfg.limit:
            return

"""Image records → tensors for training and evaluation, and tensors → a sample-grid PNG.

Shared by the training recipes and the evaluators, so every one of them sees the
same pixels: decoded with Pillow, converted to "L" (1 channel) or "RGB" (3),
resized with LANCZOS when the size differs, scaled to [0, 1].
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genloop.data.datasets import DatasetHandle
from genloop.data.record import Record
from genloop.errors import DataError, GenloopError
from genloop.train.runs import DatasetUse


def dataset_classes(dataset: DatasetHandle) -> list[str]:
    """The dataset's class list (manifest "classes"), else its sorted labels."""
    if dataset.classes:
        return dataset.classes
    labels = {label for label in (dataset.manifest.get("labels") or {}) if label != "(none)"}
    if not labels:
        labels = {r.label for r in dataset.iter_records() if r.label is not None}
    return sorted(labels)


def decode_image(record: Record, *, image_size: int, channels: int) -> np.ndarray:
    """One record's PNG/JPEG payload → uint8 array (H, W, C)."""
    try:
        with Image.open(io.BytesIO(record.payload)) as opened:
            image = opened.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"{record.where}: not a readable image ({exc})",
            hint="run `genloop clean`, which drops unreadable images with a reason",
        ) from None
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels)


def image_tensors(
    records: Iterable[Record], *, classes: list[str], image_size: int, channels: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Records → (x (N, C, H, W) float32 in [0, 1], y (N,) long class indices).

    A label outside `classes` is an error naming the record: the model could not be
    conditioned on it.
    """
    index = {label: i for i, label in enumerate(classes)}
    pixels: list[np.ndarray] = []
    labels: list[int] = []
    for record in records:
        if record.label not in index:
            raise DataError(
                f"{what}: {record.where} has label {record.label!r}, not one of the classes {classes}",
                hint="annotate the dataset with these classes, or train a new model on it",
            )
        pixels.append(decode_image(record, image_size=image_size, channels=channels))
        labels.append(index[record.label])
    if not pixels:
        empty = torch.zeros(0, channels, image_size, image_size)
        return empty, torch.zeros(0, dtype=torch.long)
    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div_(255.0)  # (N, C, H, W)
    return x.contiguous(), torch.tensor(labels, dtype=torch.long)


def grid_png(images: torch.Tensor, *, columns: int, padding: int = 2) -> bytes:
    """(N, C, H, W) in [0, 1] → PNG of a grid with `columns` images per row."""
    n, c, h, w = images.shape
    rows = max(1, -(-n // columns))
    canvas = torch.ones(c, rows * (h + padding) + padding, columns * (w + padding) + padding)
    for i, image in enumerate(images.detach().cpu().clamp(0, 1)):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[:, top : top + h, left : left + w] = image
    array = canvas.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H', W', C)
    buffer = io.BytesIO()  # a 2-D array becomes an "L" image, (H, W, 3) an "RGB" one
    Image.fromarray(np.ascontiguousarray(array[:, :, 0] if c == 1 else array)).save(buffer, format="PNG")
    return buffer.getvalue()


def train_image_tensors(
    uses: Sequence[DatasetUse],
    *,
    classes: list[str],
    image_size: int,
    channels: int,
    relabel: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train split of every dataset, each repeated `repeat` times → (x (N, C, H, W), y (N,)).

    `relabel` gives every record that one label (an unconditional model's single class).
    """
    xs, ys = [], []
    for use in uses:
        if use.repeat < 0:
            raise GenloopError(f"dataset {use.dataset.id}: repeat must be ≥ 0 (got {use.repeat})")
        records: Iterable[Record] = use.dataset.iter_records("train")
        if relabel is not None:
            records = (r.with_changes(label=relabel) for r in records)
        x, y = image_tensors(
            records,
            classes=classes,
            image_size=image_size,
            channels=channels,
            what=f"dataset {use.dataset.id} ({use.role})",
        )
        xs.append(x.repeat(use.repeat, 1, 1, 1))
        ys.append(y.repeat(use.repeat))
    train_x, train_y = torch.cat(xs), torch.cat(ys)
    if len(train_x) == 0:
        raise DataError(
            f"dataset {uses[0].dataset.id} has no records in the train split",
            hint="collect more data, or lower [collect].test_fraction",
        )
    return train_x, train_y

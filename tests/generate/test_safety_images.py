"""Image safety checks on real MNIST digits: near-duplicates of training images, NudeNet (extra)."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import open_catalog
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import GenloopError, MissingDependencyError
from genloop.generate.artifact import Artifact
from genloop.generate.safety.registry import SafetyContext, build_check, build_checks
from genloop.models.versions import register_model_version
from genloop.train.runs import RunRecorder, dataset_uses, run_id_for
from genloop.workspace import Workspace
from support.mnist import MakeDigits


def image(picture: Image.Image) -> Artifact:
    return Artifact(content_id="c1", modality="image", data=picture, format="png")


def _version_trained_on(
    workspace: Workspace, dataset: DatasetHandle, extra: list[tuple[DatasetHandle, str, int]] | None = None
) -> SafetyContext:
    catalog = open_catalog(workspace.database_url)
    config = {"image_size": 28, "channels": 1, "latent_dim": 8}
    uses = dataset_uses(dataset, extra or [])
    run_id = run_id_for(family="vae", model_name="digits", config=config, uses=uses, init_from=None)
    RunRecorder(catalog, run_id).start(
        model_name="digits",
        family="vae",
        config=config,
        parent_model_version_id=None,
        path=f"runs/{run_id}",
        uses=uses,
    )
    weights = workspace.path(f"staging-weights-{run_id[:8]}")
    weights.mkdir(parents=True)
    (weights / "config.json").write_text(json.dumps({"family": "vae", **config}), encoding="utf-8")
    version = register_model_version(
        workspace, catalog, name="digits", family="vae", run_id=run_id, weights_dir=weights
    )
    return SafetyContext(workspace, catalog, version)


@pytest.fixture
def context(sqlite_workspace: Workspace, make_digits: MakeDigits) -> SafetyContext:
    """A digits model version (28×28 grey) whose run trained on 10 × 20 real digits, 20 % held out."""
    return _version_trained_on(sqlite_workspace, make_digits(sqlite_workspace, per_class=20))


def digits(context: SafetyContext, split: str) -> list[Image.Image]:
    from genloop.generate.safety.training_data import training_datasets

    return [Image.open(io.BytesIO(r.payload)) for r in training_datasets(context)[0].iter_records(split)]


def reencoded(picture: Image.Image, size: int = 112) -> Image.Image:
    """What a channel's chain does to a copy: Lanczos upscale, RGB, JPEG quality 75."""
    big = picture.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_near_duplicate_blocks_copies_of_training_images(context: SafetyContext) -> None:
    check = build_check("near-duplicate", "image")
    train = digits(context, "train")
    for picture in (train[0], reencoded(train[7]), reencoded(train[-1], size=256)):
        verdict = check.check(image(picture), context)
        assert not verdict.passed, verdict.reason
        assert verdict.reason.startswith("near-duplicate of training image") and "at 28×28" in verdict.reason
    exact = check.check(image(train[3]), context)
    assert exact.score == 0.0 and exact.details["training_images"] == len(train)


def test_near_duplicate_ignores_what_a_model_made_that_it_was_tuned_on(
    sqlite_workspace: Workspace, make_digits: MakeDigits
) -> None:
    """A challenger tuned on its champion's samples and on liked published items: resembling those
    is the point of the fine-tune, not memorisation; the people-made digits still count."""
    real = make_digits(sqlite_workspace, per_class=5)
    real_train = list(real.iter_records("train"))
    made = [
        Record.create(real_train[1].payload, modality="image", label=real_train[1].label,
                      source="generated:digits-v1", license="generated"),
        Record.create(_shifted(real_train[2].payload), modality="image", label=real_train[2].label,
                      source="feedback:like", license="generated"),
    ]  # fmt: skip
    catalog = open_catalog(sqlite_workspace.database_url)
    shaped = write_dataset_version(sqlite_workspace, catalog, made, name="shaped", stage="feedback")
    context = _version_trained_on(sqlite_workspace, real, [(shaped, "reward-weighted", 1)])
    check = build_check("near-duplicate", "image")
    own_output = check.check(image(Image.open(io.BytesIO(made[1].payload))), context)
    assert own_output.passed, own_output.reason
    copied = check.check(image(Image.open(io.BytesIO(real_train[0].payload))), context)
    assert not copied.passed and copied.score == 0.0


def _shifted(png: bytes) -> bytes:
    """The digit moved 3 pixels right: a different file, far from every real training digit."""
    picture = Image.open(io.BytesIO(png)).convert("L")
    moved = Image.new("L", picture.size, 0)
    moved.paste(picture, (3, 0))
    buffer = io.BytesIO()
    moved.save(buffer, format="PNG")
    return buffer.getvalue()


def test_near_duplicate_passes_real_digits_the_model_never_saw(context: SafetyContext) -> None:
    check = build_check("near-duplicate", "image")
    for picture in digits(context, "test"):
        verdict = check.check(image(reencoded(picture)), context)
        assert verdict.passed, verdict.reason
        assert verdict.score is not None and verdict.score > 0.15
    assert len([key for key in context.cache if key.startswith("near-duplicate")]) == 1  # read once


def test_near_duplicate_threshold_and_defaults(context: SafetyContext) -> None:
    held_out = digits(context, "test")[0]
    score = build_check("near-duplicate", "image").check(image(held_out), context).score
    assert score is not None
    strict = build_check({"name": "near-duplicate", "threshold": score + 0.01}, "image")
    assert not strict.check(image(held_out), context).passed
    assert [c.name for c in build_checks(None, "image")] == ["near-duplicate"]
    with pytest.raises(GenloopError, match="threshold must be in"):
        build_check({"name": "near-duplicate", "threshold": 2}, "image")


def test_nsfw_passes_clean_synthetic_images(context: SafetyContext) -> None:
    pytest.importorskip("nudenet")
    check = build_check("nsfw", "image")
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    landscape = np.stack(
        [np.tile(ramp, (256, 1)), np.tile(ramp[:, None], (1, 256)), np.full((256, 256), 90)], -1
    )
    for picture in (Image.fromarray(landscape.astype(np.uint8)), reencoded(digits(context, "train")[0])):
        verdict = check.check(image(picture), context)
        assert verdict.passed and verdict.reason.startswith("no nudity detected"), verdict.reason


def test_nsfw_verdict_fails_on_an_exposed_detection() -> None:
    from genloop.generate.safety.images import EXPOSED, verdict_from_detections

    detections = [
        {"class": "FACE_FEMALE", "score": 0.9, "box": [0, 0, 10, 10]},
        {"class": "BUTTOCKS_EXPOSED", "score": 0.71, "box": [5, 5, 20, 20]},
    ]
    verdict = verdict_from_detections(detections, threshold=0.5, classes=EXPOSED)
    assert not verdict.passed and verdict.reason == "nudity detected: BUTTOCKS_EXPOSED (0.71)"
    assert verdict_from_detections(detections, threshold=0.8, classes=EXPOSED).passed


def test_nsfw_without_the_package_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from genloop.generate.safety import images

    images._nude_detector.cache_clear()
    monkeypatch.setitem(sys.modules, "nudenet", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="NudeNet") as raised:
        build_check("nsfw", "image")
    assert raised.value.hint is not None and "pip install nudenet" in raised.value.hint


def test_near_duplicate_checks_a_chunk_as_it_checks_each_item(context: SafetyContext) -> None:
    """The chunk's one matrix product gives every item the verdict checking it alone gives,
    whatever else shares the chunk (exact copies still score exactly 0.0)."""
    check = build_check("near-duplicate", "image")
    train, held_out = digits(context, "train"), digits(context, "test")
    pictures = [train[0], reencoded(train[7]), held_out[0], reencoded(held_out[1], size=256), train[3]]
    artifacts = [image(picture) for picture in pictures]
    alone = [check.check(artifact, context) for artifact in artifacts]
    together = check.check_many(artifacts, context)  # type: ignore[attr-defined]
    reversed_chunk = check.check_many(artifacts[::-1], context)  # type: ignore[attr-defined]
    assert together == alone and reversed_chunk[::-1] == alone
    assert [verdict.passed for verdict in alone] == [False, False, True, True, False]
    assert alone[0].score == 0.0 and alone[-1].score == 0.0

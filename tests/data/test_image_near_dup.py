"""pHash near-duplicate images: parity with imagehash, multi-index lookup, clustering real images."""

from __future__ import annotations

import io
import random
from functools import cache

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance
from sklearn.datasets import load_sample_images

from genloop.catalog import open_catalog
from genloop.config import CleanConfig, CollectConfig, ImageCleanConfig
from genloop.data.clean import clean
from genloop.data.collect import collect
from genloop.data.hamming_index import HammingIndex, block_bounds
from genloop.data.phash import image_hashes
from genloop.data.pipeline import reason_kind
from genloop.data.record import Record
from genloop.data.steps.image_near_dup import ImageNearDuplicates, ImagePhashes
from genloop.workspace import Workspace
from support.mnist import digit_png, mnist_pngs


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@cache
def photo_crops() -> tuple[Image.Image, ...]:
    """Six distinct 160×160 crops of scikit-learn's two sample photos (a temple, a flower)."""
    photos = [Image.fromarray(pixels) for pixels in load_sample_images().images]
    corners = [(40, 40), (240, 40), (440, 200)]
    return tuple(photo.crop((x, y, x + 160, y + 160)) for photo in photos for x, y in corners)


def variants(image: Image.Image) -> dict[str, bytes]:
    """What the same picture looks like after a trip through other people's tools."""
    width, height = image.size
    shifted = np.roll(np.asarray(image), 1, axis=1)
    return {
        "jpeg": encode(image, "JPEG", quality=75),
        "resized": encode(image.resize((width * 9 // 10, height * 9 // 10), Image.Resampling.BILINEAR)),
        "brighter": encode(ImageEnhance.Brightness(image).enhance(1.1)),
        "shifted": encode(Image.fromarray(shifted)),
    }


def image_record(payload: bytes, where: str) -> Record:
    return Record.create(
        payload, modality="image", label=None, source="test", license="MIT", meta={"path": where}
    )


def test_hashes_match_imagehash_bit_for_bit() -> None:
    digits = [Image.open(io.BytesIO(digit_png(i)[0])) for i in range(0, 5000, 250)]
    images = [*photo_crops(), *digits]
    for image, hashes in zip(images, image_hashes(images), strict=True):
        assert hashes.coarse == int(str(imagehash.phash(image)), 16)
        assert hashes.fine == int(str(imagehash.phash(image, hash_size=16)), 16)


def test_multi_index_finds_exactly_what_a_full_scan_finds() -> None:
    rng = random.Random(7)
    stored = [rng.getrandbits(64) for _ in range(300)]
    # Planted neighbours at every distance 0..9 around some stored hashes.
    queries = [h ^ sum(1 << b for b in rng.sample(range(64), d)) for d in range(10) for h in stored[:20]]
    queries += [rng.getrandbits(64) for _ in range(100)]
    for max_distance in (0, 3, 6):
        index = HammingIndex(max_distance)
        index.extend(stored)
        for query in queries:
            full_scan = sorted(
                ((h ^ query).bit_count(), p)
                for p, h in enumerate(stored)
                if (h ^ query).bit_count() <= max_distance
            )
            assert index.within(query) == full_scan


def test_blocks_cover_the_64_bits_once() -> None:
    for max_distance in (0, 1, 6, 20, 63):
        covered = 0
        for shift, mask in block_bounds(max_distance):
            assert covered & (mask << shift) == 0
            covered |= mask << shift
        assert covered == (1 << 64) - 1 and len(block_bounds(max_distance)) == max_distance + 1
    with pytest.raises(ValueError, match="between 0 and 63"):
        HammingIndex(64)


def test_edited_copies_of_photos_and_digits_cluster_with_their_original() -> None:
    originals = [(f"photo-{i}.png", encode(crop)) for i, crop in enumerate(photo_crops())]
    originals += [(f"digit-{i}.png", digit_png(i)[0]) for i in range(0, 5000, 500)]  # one per class
    copies: list[tuple[str, bytes, str]] = []  # (where, payload, where of its original)
    for where, payload in originals:
        image = Image.open(io.BytesIO(payload))
        for kind, edited in variants(image).items():
            if kind == "shifted" and where.startswith("digit"):
                continue  # 1 pixel is 4% of a 28-pixel digit: pHash does not call that the same image
            copies.append((f"{where}-{kind}", edited, where))
    records = [image_record(p, w) for w, p in originals] + [image_record(p, w) for w, p, _ in copies]
    step = ImageNearDuplicates(max_distance=6)
    kept: list[Record] = []
    dropped: list[tuple[Record, str]] = []
    for start in range(0, len(records), 7):  # state carries across batches
        output = step(ImagePhashes()(records[start : start + 7]).kept)
        kept += output.kept
        dropped += output.dropped
    assert [r.where for r in kept] == [w for w, _ in originals]
    ids = {where: image_record(p, where).id for where, p in originals}
    original_of = {where: original for where, _, original in copies}
    assert len(dropped) == len(copies)
    for record, reason in dropped:
        original = original_of[record.where]
        assert reason_kind(reason) == "near-duplicate image"
        assert reason.startswith("near-duplicate image (phash distance ")
        assert reason.endswith(f") of {ids[original][:12]} ({original})")
    stats = step.stats()
    assert stats["clusters"] == len(originals)
    assert stats["cluster_sizes"] == {"4": 10, "5": 6}  # digits: original + 3 copies; photos: + 4


def test_different_digits_are_not_clustered() -> None:
    digits = [image_record(payload, f"d{i}") for i, (payload, _) in enumerate(mnist_pngs(12))]  # 12 per class
    unconfirmed = ImageNearDuplicates.from_config(ImageCleanConfig(phash256_max_distance=256))
    assert len(unconfirmed(digits).dropped) >= 5  # the 64-bit hash alone merges different handwriting...
    output = ImageNearDuplicates.from_config(ImageCleanConfig())(digits)
    assert len(output.kept) == 120 and output.dropped == []  # ...the 256-bit confirmation does not


def test_clean_drops_near_duplicates_and_reports_cluster_sizes(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "photos"
    root.mkdir(parents=True)
    for i, crop in enumerate(photo_crops()[:3]):
        (root / f"a{i}.png").write_bytes(encode(crop))
        (root / f"b{i}.jpg").write_bytes(variants(crop)["jpeg"])
    (root / "c0.png").write_bytes(variants(photo_crops()[0])["brighter"])
    catalog = open_catalog(sqlite_workspace.database_url)
    collected = collect(
        sqlite_workspace, catalog, CollectConfig(source="folder", path="data", license="MIT"), name="photos"
    )
    result = clean(sqlite_workspace, catalog, collected.dataset, CleanConfig(), shard_size=2)
    assert sorted(r.meta["path"] for r in result.dataset.iter_records()) == [
        f"data/photos/a{i}.png" for i in range(3)
    ]
    assert result.report["dropped"]["near-duplicate image"]["count"] == 4
    [step] = [s for s in result.report["steps"] if s["name"] == "image-near-dup"]
    assert step["counters"] == {"clusters of size 2": 2, "clusters of size 3": 1}
    assert all(
        len(r.meta["phash"]) == 16 and len(r.meta["phash256"]) == 64 for r in result.dataset.iter_records()
    )


def test_near_dup_can_be_switched_off(sqlite_workspace: Workspace) -> None:
    root = sqlite_workspace.root / "data" / "photos"
    root.mkdir(parents=True)
    (root / "a.png").write_bytes(encode(photo_crops()[0]))
    (root / "b.jpg").write_bytes(variants(photo_crops()[0])["jpeg"])
    catalog = open_catalog(sqlite_workspace.database_url)
    collected = collect(
        sqlite_workspace, catalog, CollectConfig(source="folder", path="data", license="MIT"), name="photos"
    )
    cfg = CleanConfig.model_validate({"image": {"near_dup": False}})
    result = clean(sqlite_workspace, catalog, collected.dataset, cfg)
    assert result.report["kept"] == 2
    assert "image-near-dup" not in [s["name"] for s in result.report["steps"]]

"""Claim: labelling an item as AI-generated (visible mark, signed GB 45438 metadata) and verifying
it back costs milliseconds per item, a small multiple of just encoding the file.

Per item, for a 256×256 PNG (a noisy RGB gradient, and a greyscale 28 px sample upscaled as
generation's `resize` does), a 256×256 JPEG (quality 90) and a ~1 KB text (Markdown), the
median over `--repeats` runs of each step, in ms, and its ratio to the reference measured
side by side in the same run: encoding the same item with no label at all (`apply.encode`:
Pillow `save`, PNG with genloop's PNG_OPTIONS, zlib level 1 + Z_RLE; or UTF-8 for text).
Steps:

    encode, Pillow default zlib 6   PNG only: Pillow's default settings, what `encode` used before
    explicit            the visible mark (image text on a box / the text line); its layer is drawn
                        once per image size and cached, so this is the compositing (the first item
                        of a size pays the drawing, ≈ 5 ms)
    implicit+sign       content hash + Ed25519 (or SM2) signature + writing the metadata
    apply (all)         apply_labels end to end (explicit → implicit; watermark and C2PA off)
    verify (implicit)   finding the label, re-hashing the content, checking the signature
    verify (all)        verify_bytes: every label kind (includes watermark detection on images
                        when labels/watermark.py is installed)

Usage::

    .venv/bin/python benchmarks/label_cost.py [--repeats 20] [--size 256] [--algorithms ed25519 sm2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from genloop.config import LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, encode, sign_and_write, signer_for
from genloop.generate.labels.explicit import mark_image, mark_text
from genloop.generate.labels.signing import PublicKey, load_public_key
from genloop.generate.labels.verify import check_implicit, verify_bytes
from genloop.workspace import Workspace

TEXT = (
    "# 一只猫\n\n" + "The cat sat on the mat and looked at the moon. 猫坐在垫子上，看着月亮。\n" * 12
).strip()


def median_ms(step: Callable[[], Any], repeats: int) -> float:
    step()  # warm-up: fonts, keys, lazy imports
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _pillow_default_png(item: Artifact) -> bytes:
    buffer = io.BytesIO()
    item.image.save(buffer, format="PNG")
    return buffer.getvalue()


def items(size: int) -> dict[str, Artifact]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1)
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)  # a photo-like gradient
    image = Image.fromarray(pixels, "RGB")
    small = Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L")
    sample = small.resize((size, size), Image.Resampling.LANCZOS)  # what `resize` makes of a 28 px sample
    return {
        f"PNG {size}×{size}": Artifact("bench-png", "image", image, "png"),
        f"PNG {size}×{size} L, upscaled 28 px": Artifact("bench-png-l", "image", sample, "png"),
        f"JPEG {size}×{size} q90": Artifact("bench-jpeg", "image", image, "jpeg", {"quality": 90}),
        f"text ({len(TEXT.encode())} B)": Artifact("bench-text", "text", TEXT, "md"),
    }


def measure(
    item: Artifact, context: LabelContext, algorithms: list[str], repeats: int
) -> list[tuple[str, float]]:
    config = LabelConfig(watermark=False)
    rows = [("encode, no label (reference)", median_ms(lambda: encode(item), repeats))]
    if item.format == "png":  # what `encode` did before PNG_OPTIONS: Pillow's defaults (zlib level 6)
        rows.append(("encode, Pillow default zlib 6", median_ms(lambda: _pillow_default_png(item), repeats)))
    if item.modality == "image":
        rows.append(("explicit", median_ms(lambda: mark_image(item.image, config.visible_text), repeats)))
    else:
        rows.append(
            ("explicit", median_ms(lambda: mark_text(item.text, config.text_line, markdown=True), repeats))
        )
    plain = encode(item)
    for algorithm in algorithms:
        signer = signer_for(LabelConfig(signing_algorithm=algorithm), context)  # type: ignore[arg-type]

        def sign(signer: Any = signer) -> Any:
            return sign_and_write(
                plain, item.format, signer, producer="bench", produce_id=item.content_id, model_version="m"
            )

        rows.append((f"implicit+sign ({algorithm})", median_ms(sign, repeats)))
    for algorithm in algorithms:
        config = LabelConfig(watermark=False, signing_algorithm=algorithm)  # type: ignore[arg-type]
        labelled = apply_labels(item, config, context).data
        key = load_public_key(context.workspace.state_dir / "keys" / f"aigc-{algorithm}.pub")
        state = check_implicit(labelled, item.format, [key])[0].state
        assert state == "valid", state

        def apply_all(config: LabelConfig = config) -> Any:
            return apply_labels(item, config, context)

        def verify_implicit(data: bytes = labelled, key: PublicKey = key) -> Any:
            return check_implicit(data, item.format, [key])

        def verify_all(data: bytes = labelled, key: PublicKey = key) -> Any:
            return verify_bytes(data, item.format, [key])

        rows.append((f"apply (all), {algorithm}", median_ms(apply_all, repeats)))
        rows.append((f"verify (implicit), {algorithm}", median_ms(verify_implicit, repeats)))
        if algorithm == algorithms[0]:
            rows.append(("verify (all kinds)", median_ms(verify_all, max(3, repeats // 4))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per step (the median is shown)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--algorithms", nargs="+", default=["ed25519", "sm2"], choices=["ed25519", "sm2"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        context = LabelContext(Workspace(Path(folder)), producer="bench", model_version="m")
        print("| item | step | ms / item | × encode |")
        print("|---|---|---:|---:|")
        for name, item in items(args.size).items():
            rows = measure(item, context, args.algorithms, args.repeats)
            reference = rows[0][1]
            for step, ms in rows:
                print(f"| {name} | {step} | {ms:.3f} | {ms / reference:.1f} |")


if __name__ == "__main__":
    main()

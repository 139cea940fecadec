"""Claim: a genloop DDPM training step (cpu preset) costs about what a hand-written diffusers loop
costs, and the figure below is what one step and one sample take on this machine.

Side by side in one process, on the same real Fashion-MNIST images (Debian's
dataset-fashion-mnist), the same UNet (the cpu preset: block channels 32/64/64, attention
at 7×7, class-conditional), batch size and thread count:

* **genloop**: `DiffusionModel.loss` (noise, timesteps and dropped conditions from a
  per-step generator) + `build_optimizer` AdamW + `clip_gradients` + the LR schedule +
  `ExponentialMovingAverage.update` — the body of the ddpm recipe's loop;
* **reference**: a plain PyTorch loop over the same `diffusers.UNet2DModel`:
  `DDPMScheduler.add_noise`, `F.mse_loss`, `torch.optim.AdamW`, `clip_grad_norm_`, an EMA by
  `torch._foreach_lerp_` — the floor any trainer of this UNet pays.

Steps alternate in blocks (genloop, reference, …) so drift on a shared machine hits both;
the ratio of medians is the result. Sampling is timed for DDIM (preset steps, guidance 2).
Usage::

    GENLOOP_NUM_THREADS=2 .venv/bin/python benchmarks/ddpm_step.py [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genloop.config import TrainConfig
from genloop.models.ddpm import DDPMConfig, DiffusionModel
from genloop.train.device import use_available_cpus
from genloop.train.ema import ExponentialMovingAverage
from genloop.train.optim import build_optimizer, build_scheduler, clip_gradients
from genloop.train.presets import apply_preset
from genloop.train.recipes.ddpm import PRESETS

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(FASHION / name) as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def fashion(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = idx("train-images-idx3-ubyte.gz", 16), idx("train-labels-idx1-ubyte.gz", 8)
    x = torch.from_numpy(images[: n * 784].reshape(n, 1, 28, 28).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels[:n].astype(np.int64))


def genloop_steps(
    model: DiffusionModel, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, steps: int
) -> list[float]:
    optimizer = build_optimizer(model.parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=1000)
    ema = ExponentialMovingAverage(model, cfg.ema_decay or 0.999)
    times = []
    for step in range(steps):
        rows = torch.randint(0, len(x), (cfg.batch_size,), generator=torch.Generator().manual_seed(step))
        started = time.perf_counter()
        loss = model.loss(x[rows], y[rows], generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        times.append(time.perf_counter() - started)
    return times


def reference_steps(
    model: DiffusionModel, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, steps: int
) -> list[float]:
    unet, noise_scheduler = model.unet, model.noise_scheduler  # the same architecture, driven by hand
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate, fused=True)
    ema = [p.detach().clone() for p in unet.parameters()]
    null = len(CLASSES)
    times = []
    for step in range(steps):
        rows = torch.randint(0, len(x), (cfg.batch_size,), generator=torch.Generator().manual_seed(step))
        started = time.perf_counter()
        x0 = x[rows] * 2 - 1
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (len(x0),))
        labels = torch.where(torch.rand(len(x0)) < 0.1, null, y[rows])
        loss = F.mse_loss(unet(noise_scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), cfg.grad_clip or 1.0)
        optimizer.step()
        torch._foreach_lerp_(ema, [p.detach() for p in unet.parameters()], 0.001)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=3, help="blocks per side")
    parser.add_argument("--samples", type=int, default=10, help="images sampled for the sampling time")
    args = parser.parse_args()
    use_available_cpus()
    cfg = apply_preset(TrainConfig(family="ddpm", preset="cpu"), PRESETS)
    config = DDPMConfig(classes=CLASSES, **cfg.model)
    x, y = fashion(2048)
    torch.manual_seed(0)
    base = DiffusionModel.build(config)
    ours: list[float] = []
    reference: list[float] = []
    for _ in range(args.repeats):
        ours += genloop_steps(copy.deepcopy(base).train(), cfg, x, y, args.steps)[2:]  # 2 warm-up steps
        reference += reference_steps(copy.deepcopy(base).train(), cfg, x, y, args.steps)[2:]
    started = time.perf_counter()
    base.eval().sample(args.samples, torch.arange(args.samples) % 10, seed=0)
    per_image = (time.perf_counter() - started) / args.samples
    ours_median, reference_median = statistics.median(ours), statistics.median(reference)
    params = sum(p.numel() for p in base.parameters())
    print(
        f"\nddpm cpu preset: {params / 1e6:.2f} M parameters, batch {cfg.batch_size}, "
        f"{torch.get_num_threads()} thread(s), {len(ours)} timed steps per side\n"
    )
    print("| loop | s / step (median) | ratio to reference |")
    print("|---|---|---|")
    print(
        f"| genloop (recipe step: loss, AdamW, clip, LR schedule, EMA) | {ours_median:.3f} | "
        f"{ours_median / reference_median:.2f} |"
    )
    print(f"| reference (plain PyTorch + diffusers UNet2DModel) | {reference_median:.3f} | 1.00 |")
    print(
        f"\nsampling: {per_image:.2f} s / image (DDIM {config.sample_steps} steps, guidance "
        f"{config.guidance_scale}, batch {args.samples})"
    )


if __name__ == "__main__":
    main()

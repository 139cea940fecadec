"""The reference of benchmarks/image_families_fashion.py: a DCGAN trained the pytorch/examples way.

Written here after the published facts of pytorch/examples' dcgan/main.py (not copied from it):
nz = 100, ngf = ndf = 64, batch 64, Adam(lr 2e-4, β = (0.5, 0.999)) for both nets, a Sigmoid
D with BCELoss, conv weights N(0, 0.02), BatchNorm scales N(1, 0.02) and shifts 0; each step
updates D on a real batch and a fake batch (two backward passes), then G against "fake labels
are real" (the non-saturating loss), reading D(x), D(G(z)) with `.item()` as the example logs
them. Plain fp32, torch's default threads; no EMA, mixed precision, compile or LR schedule.

The example's networks are 64 × 64 (five layers each) and its --imageSize does not change the
layers, so at 32 × 32 the outermost layer of each is dropped: G 1 → 4 → 8 → 16 → 32, D mirrored.
Fashion-MNIST's 28 × 28 images are padded with 2 background (black) pixels to 32 × 32 and the
samples are cropped back to 28 × 28, so neither side is blurred by resampling. Samples are
drawn as the example draws its grids: G as training leaves it (BatchNorm on batch statistics),
64 at a time.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

NZ, NGF, NDF, BATCH, LR, BETAS = 100, 64, 64, 64, 2e-4, (0.5, 0.999)
PAD = 2  # 28 + 2 · 2 = 32


def generator(channels: int = 1) -> nn.Sequential:
    """z (B, NZ, 1, 1) → images (B, C, 32, 32) in [−1, 1]."""
    return nn.Sequential(
        nn.ConvTranspose2d(NZ, NGF * 4, 4, 1, 0, bias=False),  # (B, 256, 4, 4)
        nn.BatchNorm2d(NGF * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),  # (B, 128, 8, 8)
        nn.BatchNorm2d(NGF * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),  # (B, 64, 16, 16)
        nn.BatchNorm2d(NGF),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF, channels, 4, 2, 1, bias=False),  # (B, C, 32, 32)
        nn.Tanh(),
    )


def discriminator(channels: int = 1) -> nn.Sequential:
    """images (B, C, 32, 32) → P(real) (B, 1, 1, 1)."""
    return nn.Sequential(
        nn.Conv2d(channels, NDF, 4, 2, 1, bias=False),  # (B, 64, 16, 16)
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),  # (B, 128, 8, 8)
        nn.BatchNorm2d(NDF * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),  # (B, 256, 4, 4)
        nn.BatchNorm2d(NDF * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, 1, 4, 1, 0, bias=False),  # (B, 1, 1, 1)
        nn.Sigmoid(),
    )


def dcgan_init(module: nn.Module) -> None:
    """DCGAN paper §4: every weight N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class Snapshot:
    """The generator as it was `seconds` into training, after `steps` updates."""

    seconds: float
    steps: int
    generator: nn.Module


class ReferenceDCGAN:
    """G, D, their optimisers and the example's training step."""

    def __init__(self, *, channels: int = 1, seed: int = 0) -> None:
        torch.manual_seed(seed)  # the example seeds the global RNG (--manualSeed)
        self.generator, self.discriminator = generator(channels), discriminator(channels)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        self.criterion = nn.BCELoss()
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=LR, betas=BETAS)
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=LR, betas=BETAS)

    def step(self, real: torch.Tensor) -> dict[str, float]:
        """One update of D then G on a batch (B, C, 32, 32) in [−1, 1]."""
        batch = len(real)
        # (1) Update D: maximise log D(x) + log(1 − D(G(z)))
        self.discriminator.zero_grad()
        label = torch.full((batch,), 1.0)
        output = self.discriminator(real).view(-1)
        error_d_real = self.criterion(output, label)
        error_d_real.backward()
        d_x = output.mean().item()
        noise = torch.randn(batch, NZ, 1, 1)
        fake = self.generator(noise)
        label.fill_(0.0)
        output = self.discriminator(fake.detach()).view(-1)
        error_d_fake = self.criterion(output, label)
        error_d_fake.backward()
        d_g_z1 = output.mean().item()
        self.optimizer_d.step()
        # (2) Update G: maximise log D(G(z)) — fake labels are real for the generator's cost
        self.generator.zero_grad()
        label.fill_(1.0)
        output = self.discriminator(fake).view(-1)
        error_g = self.criterion(output, label)
        error_g.backward()
        d_g_z2 = output.mean().item()
        self.optimizer_g.step()
        return {
            "loss_d": (error_d_real + error_d_fake).item(),
            "loss_g": error_g.item(),
            "d_x": d_x,
            "d_g_z1": d_g_z1,
            "d_g_z2": d_g_z2,
        }

    def train_for(self, images: torch.Tensor, seconds: list[float], *, seed: int = 0) -> list[Snapshot]:
        """Train on `images` (N, C, 28, 28) in [0, 1] until each of `seconds` (wall clock) has passed.

        The clock starts before the images are padded and scaled, and is read after every step;
        at each mark a copy of G is kept. The example's training does not depend on how long it
        will run (no LR schedule), so G at t seconds is what a run of exactly t seconds returns.
        """
        marks = sorted(seconds)
        snapshots: list[Snapshot] = []
        started = time.perf_counter()
        data = F.pad(images, (PAD, PAD, PAD, PAD)).mul(2.0).sub(1.0)  # (N, C, 32, 32) in [−1, 1]
        order_generator = torch.Generator().manual_seed(seed)
        steps = 0
        while marks:
            order = torch.randperm(len(data), generator=order_generator)  # one epoch, reshuffled
            for rows in order.split(BATCH):
                self.step(data[rows])
                steps += 1
                elapsed = time.perf_counter() - started
                while marks and elapsed >= marks[0]:
                    snapshots.append(Snapshot(elapsed, steps, copy.deepcopy(self.generator)))
                    marks.pop(0)
                if not marks:
                    break
        return snapshots


@torch.no_grad()
def sample(generator_at: nn.Module, n: int, *, seed: int) -> torch.Tensor:
    """`n` images (n, C, 28, 28) in [0, 1], drawn 64 at a time with G in training mode (as the
    example's sample grids), cropped from 32 × 32."""
    noise = torch.Generator().manual_seed(seed)
    generator_at.train()
    chunks = []
    for start in range(0, n, BATCH):
        z = torch.randn(min(BATCH, n - start), NZ, 1, 1, generator=noise)
        chunks.append(generator_at(z)[:, :, PAD:-PAD, PAD:-PAD])
    return torch.cat(chunks).add(1.0).div(2.0).clamp(0.0, 1.0)

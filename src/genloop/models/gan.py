"""DCGAN (Radford et al. 2016, https://arxiv.org/abs/1511.06434), unconditional or class-conditional.

    generator      G(z, y): [z, embed(y)] (B, 2Z, 1, 1) → ConvT(k = s₀) + BatchNorm + ReLU
                   → (B, h·2^min(L−1, 3), s₀, s₀) → ConvT(4, 2, 1) + BatchNorm + ReLU (widths halve,
                   sizes double) … → ConvT(4, 2, 1) + tanh → (B, C, H, W) in [−1, 1]
    discriminator  D(x, y): Conv(4, 2, 1) + LeakyReLU(0.2), then Conv(4, 2, 1) + BatchNorm +
                   LeakyReLU … → φ(x) (B, C', s₀, s₀) → logit = w·φ(x)  (a conv with k = s₀)
                   (+ ⟨embed(y), φ(x)⟩ with projection conditioning)

For 28×28 this is the classic MNIST DCGAN (G: 1 → 7 → 14 → 28, D mirrored; the
pytorch/examples layout: no conv biases, N(0, 0.02) weights; 898k parameters at h = 64).
Any image size ≥ 8 works: sizes halve while above 7 (28 → 14 → 7, 32 → 16 → 8 → 4,
64 → … → 4), and output_padding restores odd sizes (27 → 13 → 6 → 13 → 27).

Conditioning (`conditioning`):
  none        G(z), D(x); the model has one pseudo-class, "any"
  concat      G([z, embed(y)]); D gets one-hot planes of y as extra input channels (Mirza &
              Osindero 2014, https://arxiv.org/abs/1411.1784)
  projection  G([z, embed(y)]); D adds ⟨embed(y), φ(x)⟩ to its logit (Miyato & Koyama 2018,
              https://arxiv.org/abs/1802.05637)

Losses (`loss`), with logits d = D(·):
  nonsaturating  L_D = softplus(−d_real) + softplus(d_fake)   (= BCE: max log D(x) + log(1 − D(G(z))))
                 L_G = softplus(−d_fake)                        (max log D(G(z)), Goodfellow et al. 2014)
  hinge          L_D = relu(1 − d_real) + relu(1 + d_fake),  L_G = −d_fake   (Lim & Ye 2017)
`spectral_norm` wraps every layer of D in spectral normalisation and drops D's BatchNorm
(Miyato et al. 2018, https://arxiv.org/abs/1802.05957).

Training images are scaled to [−1, 1] (tanh's range); `sample` returns [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as with_spectral_norm

from genloop.errors import GenloopError
from genloop.models.conditions import class_indices
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.registry import register_model
from genloop.models.seeds import generators, standard_normal

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SAMPLING_PARAMS = ("temperature",)
CONDITIONINGS = ("none", "concat", "projection")
LOSSES = ("nonsaturating", "hinge")
UNCONDITIONAL_CLASS = "any"
"""The single class of an unconditional model, so that `genloop generate` asks it for images."""
MAX_IMAGE_SIZE = 256
MAX_WIDTH_DOUBLINGS = 3  # widths h, 2h, 4h, 8h, 8h, … (DCGAN stops at 8× too)


@dataclass
class GANConfig:
    image_size: int = 28
    channels: int = 1
    classes: list[str] = field(default_factory=list)
    """Class names (conditional); empty or ["any"] for conditioning "none" (stored as ["any"])."""
    latent_dim: int = 100
    hidden_channels: int = 64
    conditioning: str = "none"
    loss: str = "nonsaturating"
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.image_size, int) or not 8 <= self.image_size <= MAX_IMAGE_SIZE:
            problems.append(
                f"image_size must be an integer from 8 to {MAX_IMAGE_SIZE} (got {self.image_size})"
            )
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3 (got {self.channels})")
        if self.conditioning not in CONDITIONINGS:
            problems.append(
                f"conditioning must be one of {', '.join(CONDITIONINGS)} (got {self.conditioning!r})"
            )
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)} (got {self.loss!r})")
        if not isinstance(self.spectral_norm, bool):
            problems.append(f"spectral_norm must be true or false (got {self.spectral_norm!r})")
        for name in ("latent_dim", "hidden_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer ≥ 1 (got {value!r})")
        self.classes = list(self.classes)
        if self.conditioning == "none":
            if self.classes not in ([], [UNCONDITIONAL_CLASS]):
                problems.append(
                    f"an unconditional model (conditioning 'none') has no classes (got {self.classes})"
                )
            self.classes = [UNCONDITIONAL_CLASS]
        elif not self.classes:
            problems.append(
                f"conditioning {self.conditioning!r} needs class labels, and the data has none "
                '(label the dataset with `genloop annotate`, or set conditioning = "none")'
            )
        if len(set(self.classes)) != len(self.classes):
            problems.append(f"classes has duplicates: {self.classes}")
        if problems:
            raise GenloopError(
                "invalid GAN config: " + "; ".join(problems),
                hint="fix [train] / [train.model] in genloop.toml",
            )

    @property
    def conditional(self) -> bool:
        return self.conditioning != "none"


def spatial_sizes(image_size: int) -> list[int]:
    """Feature-map sizes from image to bottleneck: 28 → [28, 14, 7], 64 → [64, 32, 16, 8, 4]."""
    sizes = [image_size]
    while sizes[-1] > 7:
        sizes.append(sizes[-1] // 2)
    return sizes


def level_widths(config: GANConfig) -> list[int]:
    """Channels at each size of `spatial_sizes`: [C, h, 2h, 4h, 8h, 8h, …]."""
    levels = len(spatial_sizes(config.image_size))
    hidden = config.hidden_channels
    return [config.channels] + [hidden * 2 ** min(i, MAX_WIDTH_DOUBLINGS) for i in range(levels - 1)]


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), BatchNorm gains ~ N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (B, Z) [, y (B,)] → images (B, C, H, W) in [−1, 1]."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        sizes, widths = spatial_sizes(config.image_size), level_widths(config)
        latent = config.latent_dim
        self.embed = nn.Embedding(len(config.classes), latent) if config.conditional else None
        in_dim = 2 * latent if config.conditional else latent
        # from 1×1 to s₀×s₀ in one transposed conv (a linear layer, laid out as a feature map)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, widths[-1], sizes[-1], 1, 0, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(True),
        ]
        for level in range(len(sizes) - 2, -1, -1):  # deepest − 1 … 0 (the image)
            # ConvTranspose2d(k=4, s=2, p=1) doubles the size; output_padding adds the odd pixel back
            layers.append(
                nn.ConvTranspose2d(
                    widths[level + 1], widths[level], 4, 2, 1, output_padding=sizes[level] % 2, bias=False
                )
            )
            layers += [nn.BatchNorm2d(widths[level]), nn.ReLU(True)] if level else [nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(
        self, z: torch.Tensor, y: torch.Tensor | None = None, *, channels_last: bool = False
    ) -> torch.Tensor:
        """`channels_last` (sampling) runs the layers on NHWC feature maps: faster transposed
        convolutions on the CPU, the same bits (tests/models/test_gan.py)."""
        if self.embed is not None:
            if y is None:
                raise GenloopError("this generator is class-conditional: pass class indices y")
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)  # (B, 2Z)
        x = z[:, :, None, None]  # (B, Z', 1, 1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x).contiguous()  # (B, C, H, W)


class Discriminator(nn.Module):
    """x (B, C, H, W) in [−1, 1] [, y (B,)] → logits (B,)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        sizes, widths = spatial_sizes(config.image_size), level_widths(config)
        self.conditioning, self.num_classes = config.conditioning, len(config.classes)
        use_norm, sn = not config.spectral_norm, config.spectral_norm
        in_channels = widths[0] + (self.num_classes if config.conditioning == "concat" else 0)
        layers: list[nn.Module] = []
        for level in range(len(sizes) - 1):
            c_in = in_channels if level == 0 else widths[level]
            normed = use_norm and level > 0  # DCGAN: no BatchNorm on D's input layer
            layers.append(nn.Conv2d(c_in, widths[level + 1], 4, 2, 1, bias=sn))
            if normed:
                layers.append(nn.BatchNorm2d(widths[level + 1]))
            layers.append(nn.LeakyReLU(0.2, True))
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, sizes[-1], 1, 0, bias=sn)  # a linear layer over φ(x)
        flat = widths[-1] * sizes[-1] ** 2
        self.projection = (
            nn.Embedding(self.num_classes, flat) if config.conditioning == "projection" else None
        )
        self.apply(_dcgan_init)
        if self.projection is not None:
            nn.init.normal_(self.projection.weight, 0.0, 0.02)
        if sn:
            for module in [m for m in self.modules() if isinstance(m, nn.Conv2d | nn.Embedding)]:
                with_spectral_norm(module)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditioning != "none" and y is None:
            raise GenloopError("this discriminator is class-conditional: pass class indices y")
        if self.conditioning == "concat" and y is not None:
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]  # (B, K, 1, 1)
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)  # (B, C + K, H, W)
        features = self.features(x)  # (B, C', s₀, s₀)
        logits = self.head(features).flatten()  # (B,)
        if self.projection is not None and y is not None:
            # projection discriminator: logit += ⟨embed(y), φ(x)⟩
            logits = logits + (self.projection(y).to(features.dtype) * features.flatten(1)).sum(1)
        return logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean D loss over the batch (see the module docstring); logits are cast to fp32 first."""
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    # −[log σ(d_real) + log(1 − σ(d_fake))] = softplus(−d_real) + softplus(d_fake)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean G loss: −log σ(d_fake) (non-saturating) or −d_fake (hinge)."""
    fake = fake_logits.float()
    return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()


@torch.no_grad()
def sample_images(
    generator: Generator,
    config: GANConfig,
    n: int,
    labels: torch.Tensor,
    *,
    seed: int,
    seeds: Sequence[int] | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """`n` images (n, C, H, W) in [0, 1] from `generator` in eval mode (BatchNorm running statistics,
    so an image depends on its seed and label only, never on the rest of the batch)."""
    noise = generators(n, seed, seeds)  # CPU noise: the same images on every device
    z = standard_normal((n, config.latent_dim), noise) * temperature  # (n, Z)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        y = labels.to(device) if config.conditional else None
        images = generator(z.to(device), y, channels_last=True)
    finally:
        generator.train(was_training)
    return images.float().add(1.0).div(2.0).clamp(0.0, 1.0)  # [−1, 1] → [0, 1]


@register_model("gan")
class DCGAN(nn.Module):
    config_class = GANConfig

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        classes: list[str] | None = None,
        latent_dim: int = 100,
        hidden_channels: int = 64,
        conditioning: str = "none",
        loss: str = "nonsaturating",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.config = GANConfig(
            image_size,
            channels,
            list(classes or []),
            latent_dim,
            hidden_channels,
            conditioning,
            loss,
            spectral_norm,
        )
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)

    @classmethod
    def build(cls, config: GANConfig) -> DCGAN:
        return cls(**asdict(config))

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, y): (B, Z) noise → (B, C, H, W) in [−1, 1]."""
        return self.generator(z, y)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        condition: torch.Tensor | None = None,
        *,
        seed: int,
        seeds: Sequence[int] | None = None,
        **params: Any,
    ) -> torch.Tensor:
        """`n` images (n, C, H, W) in [0, 1]; the same seed gives the same images.

        `condition` holds n class indices (positions in `classes`); None cycles through the
        classes (an unconditional model ignores it). `temperature` scales the noise z
        (default 1.0; lower: more typical, less varied — the "truncation trick", loosely).
        `seeds` (one per image) makes image i exactly `sample(1, …, seed=seeds[i])`.
        """
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the gan family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        labels = self._condition(n, condition)
        temperature = float(params.get("temperature", 1.0))
        return sample_images(
            self.generator, self.config, n, labels, seed=seed, seeds=seeds, temperature=temperature
        )

    def _condition(self, n: int, condition: torch.Tensor | None) -> torch.Tensor:
        return class_indices(n, condition, self.config.classes)

    def save(self, directory: Path) -> None:
        """Write `config.json` (family + every config field) and `model.safetensors` (G and D)."""
        save_model_files(directory, family="gan", config=asdict(self.config), module=self)

    @classmethod
    def load(cls, directory: Path) -> DCGAN:
        model = cls(**read_model_config(directory, family="gan", config_class=GANConfig))
        load_model_weights(model, directory)
        return model

"""Denoising diffusion (DDPM, Ho et al. 2020, https://arxiv.org/abs/2006.11239) on a diffusers
`UNet2DModel`, unconditional, class-conditional or text-conditional.

    forward process  x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε          t ~ U{0..T−1}, ε ~ N(0, I), x_0 in [−1, 1]
    training loss    ‖ε − ε_θ(x_t, t, c)‖²                       the "simple" ε-prediction loss
    sampling         DDPM ancestral steps, or DDIM (Song et al. 2020, https://arxiv.org/abs/2010.02502;
                     η = 0, deterministic, 10-50 steps instead of T)
    guidance         ε̂ = ε_θ(x_t, ∅) + w · (ε_θ(x_t, c) − ε_θ(x_t, ∅))
                     classifier-free guidance (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598):
                     c is replaced by a learned null condition ∅ with probability p_uncond in training

The condition c enters the UNet where the timestep does (added to its time embedding):

    class  nn.Embedding(K + 1, 4·C₀) inside the UNet; index K is ∅
    text   a frozen sentence encoder (text_encoders.py) → e (384,) → MLP → (4·C₀,), fed to
           the UNet as an "identity" class embedding; ∅ is a learned vector in place of e.
           Any prompt ("a running shoe", "女士上衣") is a point in the encoder's space, so
           prompts near a training caption draw that class.

Image sizes: a UNet of L levels halves the size L − 1 times, so it needs a multiple of
2^(L−1). `fit = "pad"` (default) pads other sizes with edge pixels up to the next multiple
(28 → 32 for 4 levels) and crops the samples back; `"resize"` resizes bilinearly there
and back; `"exact"` refuses such sizes. Inputs and samples are always `image_size`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

from genloop.errors import GenloopError
from genloop.models.captions import LANGUAGES, default_caption
from genloop.models.conditions import class_indices
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.registry import register_model
from genloop.models.seeds import generators, standard_normal
from genloop.models.text_encoders import ENCODER_DIMS, text_encoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SAMPLING_PARAMS = ("steps", "scheduler", "guidance_scale")
CONDITIONINGS = ("none", "class", "text")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
FITS = ("pad", "resize", "exact")
HINT = "fix [train.model] in genloop.toml (see `genloop.models.ddpm.DDPMConfig`)"


@dataclass
class DDPMConfig:
    image_size: int = 28
    channels: int = 1
    classes: list[str] = field(default_factory=list)
    conditioning: str = "class"
    """none | class | text (captions built from the class labels, see models/captions.py)."""
    block_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    """Channels of each UNet level; the size halves between levels."""
    layers_per_block: int = 1
    attention_levels: list[int] = field(default_factory=lambda: [2])
    """Levels (0-based) with self-attention; the middle block has attention when any level does."""
    norm_groups: int = 8
    """GroupNorm groups; must divide every entry of block_channels."""
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    """squaredcos_cap_v2: the cosine schedule of Nichol & Dhariwal 2021 (better on small images)."""
    p_uncond: float = 0.1
    """Probability of training on the null condition (classifier-free guidance); 0 disables it."""
    guidance_scale: float = 2.0
    """Default guidance weight w at sampling (1: plain conditional, 0: unconditional)."""
    sample_steps: int = 50
    """Default DDIM steps at sampling."""
    fit: str = "pad"
    text_encoder: str = "minilm"
    """Text conditioning only: minilm (English) or e5 (Chinese + English)."""
    caption_languages: list[str] = field(default_factory=list)
    """Languages of the training captions; default en for minilm, en + zh for e5."""

    def __post_init__(self) -> None:
        if not self.caption_languages:
            self.caption_languages = ["en", "zh"] if self.text_encoder == "e5" else ["en"]
        problems = [*self._shape_problems(), *self._condition_problems(), *self._diffusion_problems()]
        if problems:
            raise GenloopError("invalid ddpm config: " + "; ".join(problems), hint=HINT)

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.block_channels) - 1)

    @property
    def unet_size(self) -> int:
        """The size the UNet works at: image_size rounded up to a multiple of 2^(levels − 1)."""
        return -(-self.image_size // self.size_multiple) * self.size_multiple

    def _shape_problems(self) -> list[str]:
        problems = []
        if self.image_size < 8:
            problems.append(f"image_size must be at least 8 (got {self.image_size})")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3 (got {self.channels})")
        channels = self.block_channels
        if not (1 <= len(channels) <= 5) or any(not isinstance(c, int) or c < 1 for c in channels):
            return [*problems, f"block_channels must be 1 to 5 positive integers (got {channels})"]
        if any(c % self.norm_groups for c in channels) or self.norm_groups < 1:
            problems.append(
                f"norm_groups {self.norm_groups} must divide every block_channels entry {channels}"
            )
        if self.layers_per_block < 1:
            problems.append(f"layers_per_block must be ≥ 1 (got {self.layers_per_block})")
        if any(level not in range(len(channels)) for level in self.attention_levels):
            problems.append(f"attention_levels {self.attention_levels} must be in 0..{len(channels) - 1}")
        if self.fit not in FITS:
            problems.append(f"fit must be one of {', '.join(FITS)} (got {self.fit!r})")
        elif self.fit == "exact" and self.image_size % self.size_multiple:
            problems.append(
                f"image_size {self.image_size} is not a multiple of {self.size_multiple}, which a UNet of "
                f"{len(channels)} levels needs: set fit = 'pad' (pads to {self.unet_size}), an image_size "
                f"of {self.unet_size}, or fewer block_channels"
            )
        if self.image_size >= 8 and self.unet_size // self.size_multiple < 2:
            problems.append(
                f"image_size {self.image_size} is too small for {len(channels)} levels (the innermost "
                "feature map would be 1×1): use fewer block_channels"
            )
        return problems

    def _condition_problems(self) -> list[str]:
        problems = []
        if self.conditioning not in CONDITIONINGS:
            problems.append(
                f"conditioning must be one of {', '.join(CONDITIONINGS)} (got {self.conditioning!r})"
            )
        elif self.conditioning != "none" and not self.classes:
            problems.append(f"classes is empty ({self.conditioning} conditioning learns from labels)")
        if len(set(self.classes)) != len(self.classes):
            problems.append(f"classes has duplicates: {self.classes}")
        if self.text_encoder not in ENCODER_DIMS:
            problems.append(
                f"text_encoder must be one of {', '.join(ENCODER_DIMS)} (got {self.text_encoder!r})"
            )
        if not set(self.caption_languages) <= set(LANGUAGES):
            problems.append(f"caption_languages must be among {', '.join(LANGUAGES)}")
        if not 0.0 <= self.p_uncond < 1.0:
            problems.append(f"p_uncond must be in [0, 1) (got {self.p_uncond})")
        if self.guidance_scale < 0:
            problems.append(f"guidance_scale must be ≥ 0 (got {self.guidance_scale})")
        return problems

    def _diffusion_problems(self) -> list[str]:
        problems = []
        if not 2 <= self.train_timesteps <= 10_000:
            problems.append(f"train_timesteps must be in 2..10000 (got {self.train_timesteps})")
        elif not 1 <= self.sample_steps <= self.train_timesteps:
            problems.append(f"sample_steps must be in 1..train_timesteps (got {self.sample_steps})")
        if self.beta_schedule not in BETA_SCHEDULES:
            problems.append(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}")
        return problems


def _unet(config: DDPMConfig) -> UNet2DModel:
    levels = range(len(config.block_channels))
    attention = set(config.attention_levels)
    down = [("AttnDownBlock2D" if i in attention else "DownBlock2D") for i in levels]
    up = [("AttnUpBlock2D" if i in attention else "UpBlock2D") for i in reversed(levels)]
    return UNet2DModel(
        sample_size=config.unet_size,
        in_channels=config.channels,
        out_channels=config.channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(config.block_channels),
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_groups,
        add_attention=bool(attention),
        class_embed_type="identity" if config.conditioning == "text" else None,
        num_class_embeds=len(config.classes) + 1 if config.conditioning == "class" else None,
    )


@register_model("ddpm")
class DiffusionModel(nn.Module):
    config_class = DDPMConfig

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.config = DDPMConfig(**settings)
        # Any: diffusers' lazily imported classes do not type-check as callables
        self.unet: Any = _unet(self.config)
        if self.config.conditioning == "text":
            text_dim, embed_dim = ENCODER_DIMS[self.config.text_encoder], 4 * self.config.block_channels[0]
            self.text_projection = nn.Sequential(
                nn.Linear(text_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
            )
            self.null_text = nn.Parameter(torch.zeros(text_dim))  # ∅ for classifier-free guidance
        self.noise_scheduler: Any = DDPMScheduler(
            num_train_timesteps=self.config.train_timesteps,
            beta_schedule=self.config.beta_schedule,
            prediction_type="epsilon",
            clip_sample=True,  # x̂_0 stays in [−1, 1], the data range
        )

    @classmethod
    def build(cls, config: DDPMConfig) -> DiffusionModel:
        return cls(**asdict(config))

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- pixels ↔ UNet space ---------------------------------------------------------------------

    def to_unet_space(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] → (B, C, U, U) in [−1, 1], U = unet_size (padded or resized)."""
        x = x * 2.0 - 1.0
        margin = self.config.unet_size - self.config.image_size
        if margin == 0:
            return x
        if self.config.fit == "resize":
            return F.interpolate(x, size=self.config.unet_size, mode="bilinear", align_corners=False)
        before = margin // 2
        return F.pad(x, (before, margin - before, before, margin - before), mode="replicate")

    def from_unet_space(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_unet_space`: crop (or resize) back, [−1, 1] → [0, 1]."""
        size, margin = self.config.image_size, self.config.unet_size - self.config.image_size
        if margin and self.config.fit == "resize":
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        elif margin:
            x = x[:, :, margin // 2 : margin // 2 + size, margin // 2 : margin // 2 + size]
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0)

    # -- the denoiser ----------------------------------------------------------------------------

    def _embedding(self, condition: torch.Tensor | None, uncond: torch.Tensor) -> torch.Tensor | None:
        """What the UNet adds to its time embedding: class indices or projected text (B, 4·C₀)."""
        if self.config.conditioning == "none" or condition is None:
            return None
        if self.config.conditioning == "class":
            return torch.where(uncond, len(self.config.classes), condition)  # index K = ∅
        text = torch.where(uncond[:, None], self.null_text.expand_as(condition), condition)  # (B, 384)
        return self.text_projection(text)

    def predict_noise(
        self,
        noisy: torch.Tensor,
        timesteps: torch.Tensor,
        condition: torch.Tensor | None,
        uncond: torch.Tensor,
    ) -> torch.Tensor:
        """ε_θ(x_t, t, c): noisy (B, C, U, U), timesteps (B,), uncond (B,) bool → (B, C, U, U)."""
        return self.unet(noisy, timesteps, class_labels=self._embedding(condition, uncond)).sample

    def loss(
        self, x: torch.Tensor, condition: torch.Tensor | None, *, generator: torch.Generator
    ) -> torch.Tensor:
        """Mean ‖ε − ε_θ(x_t, t, c)‖² of a batch x (B, C, S, S) in [0, 1].

        `condition`: (B,) class indices, or (B, D) text embeddings, or None. The noise, the
        timesteps and the dropped conditions all come from `generator` (a CPU generator):
        the same generator state gives the same loss on any device.
        """
        x0 = self.to_unet_space(x)
        batch = len(x0)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        timesteps = torch.randint(0, self.config.train_timesteps, (batch,), generator=generator)
        uncond = torch.rand(batch, generator=generator) < self.config.p_uncond
        timesteps, uncond = timesteps.to(x0.device), uncond.to(x0.device)
        noisy = self.noise_scheduler.add_noise(x0, noise, timesteps)  # x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
        return F.mse_loss(self.predict_noise(noisy, timesteps, condition, uncond).float(), noise.float())

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self, n: int, condition: Any = None, *, seed: int, seeds: Sequence[int] | None = None, **params: Any
    ) -> torch.Tensor:
        """`n` images (n, C, S, S) in [0, 1]; the same seed and parameters give the same images.

        `condition`: class indices (a tensor of n, or 1 for all; None cycles the classes);
        for a text model also a prompt string, a list of n prompts, or (n, D) embeddings —
        a class index means its caption ("a t-shirt"). Parameters: `steps` (default
        sample_steps for DDIM, train_timesteps for DDPM), `scheduler` ("ddim" | "ddpm"),
        `guidance_scale` (default the config's; 1 = no guidance). `seeds` (one per image) makes
        image i exactly `sample(1, …, seed=seeds[i])`: the start noise and every DDPM step's
        noise are drawn per image.
        """
        steps, scheduler, guidance = self._sampling_params(params)
        cond = self._condition(n, condition)
        generator = generators(n, seed, seeds)  # CPU noise: the same images on every device
        size = self.config.unet_size
        x = standard_normal((n, self.config.channels, size, size), generator).to(self.device)
        guided = cond is not None and guidance != 1.0
        keep, drop = torch.zeros(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
        uncond = torch.cat([keep, drop]).to(self.device) if guided else keep.to(self.device)
        cond_in = torch.cat([cond, cond]) if guided and cond is not None else cond
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            model_in = torch.cat([x, x]) if guided else x
            eps = self.predict_noise(model_in, t.expand(len(model_in)).to(self.device), cond_in, uncond)
            if guided:
                eps_cond, eps_uncond = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_cond - eps_uncond)  # ε̂ = ε(∅) + w (ε(c) − ε(∅))
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return self.from_unet_space(x)

    def _sampling_params(self, params: dict[str, Any]) -> tuple[int, Any, float]:
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the ddpm family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        name = params.get("scheduler", "ddim")
        if name not in ("ddim", "ddpm"):
            raise GenloopError(f"scheduler must be 'ddim' or 'ddpm' (got {name!r})")
        default_steps = self.config.sample_steps if name == "ddim" else self.config.train_timesteps
        steps = int(params.get("steps") or default_steps)
        if not 1 <= steps <= self.config.train_timesteps:
            raise GenloopError(f"steps must be in 1..{self.config.train_timesteps} (got {steps})")
        guidance = float(params.get("guidance_scale", self.config.guidance_scale))
        if guidance < 0:
            raise GenloopError(f"guidance_scale must be ≥ 0 (got {guidance})")
        scheduler: Any
        if name == "ddim":
            # "trailing" spacing ends at the last training step, which few-step sampling needs
            # (Lin et al. 2023, https://arxiv.org/abs/2305.08891)
            scheduler = DDIMScheduler.from_config(self.noise_scheduler.config, timestep_spacing="trailing")
        else:
            scheduler = DDPMScheduler.from_config(self.noise_scheduler.config)
        return steps, scheduler, guidance

    def _condition(self, n: int, condition: Any) -> torch.Tensor | None:
        """`condition` → (n,) class indices, (n, D) text embeddings, or None (unconditional)."""
        kind = self.config.conditioning
        if kind == "none":
            return None
        if kind == "text" and isinstance(condition, str):
            condition = [condition] * n
        if (
            kind == "text"
            and isinstance(condition, (list, tuple))
            and all(isinstance(c, str) for c in condition)
        ):
            return self._prompts(n, list(condition))
        if kind == "text" and isinstance(condition, torch.Tensor) and condition.is_floating_point():
            return self._text_vectors(n, condition)
        labels = self._class_indices(n, condition)
        if kind == "class":
            return labels.to(self.device)
        return self._prompts(n, [default_caption(self.config.classes[i]) for i in labels.tolist()])

    def _prompts(self, n: int, prompts: list[str]) -> torch.Tensor:
        if len(prompts) == 1:
            prompts = prompts * n
        if len(prompts) != n:
            raise GenloopError(f"condition must hold 1 or {n} prompts (got {len(prompts)})")
        return self._text_vectors(n, text_encoder(self.config.text_encoder).encode(prompts))

    def _text_vectors(self, n: int, vectors: torch.Tensor) -> torch.Tensor:
        dim = ENCODER_DIMS[self.config.text_encoder]
        if vectors.shape != (n, dim):
            raise GenloopError(f"text condition must be ({n}, {dim}) embeddings (got {tuple(vectors.shape)})")
        return vectors.to(self.device, torch.float32)

    def _class_indices(self, n: int, condition: Any) -> torch.Tensor:
        text = "a text model also takes prompt strings" if self.config.conditioning == "text" else ""
        return class_indices(n, condition, self.config.classes, also_accepts=text)

    # -- files -----------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write `config.json` (family + every config field) and `model.safetensors`."""
        save_model_files(directory, family="ddpm", config=asdict(self.config), module=self)

    @classmethod
    def load(cls, directory: Path) -> DiffusionModel:
        model = cls(**read_model_config(directory, family="ddpm", config_class=DDPMConfig))
        load_model_weights(model, directory)
        return model

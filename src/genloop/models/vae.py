"""Class- or text-conditional convolutional VAE (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114;
conditional form with a conditional prior: Sohn et al. 2015, https://papers.nips.cc/paper/5775).

    encoder  q(z | x, y) = N(mu, diag(exp(logvar)))   stride-2 convs, then [features, onehot(y)]
    prior    p(z | y)    = N(m_y, diag(exp(s_y)))     one learned mean / log-variance per class
    decoder  p(x | z, y) = Bernoulli(sigmoid(logits))  [z, onehot(y)], then stride-2 conv-transposes,
                                                       plus a per-class output bias

    ELBO(x, y) = E_q[log p(x | z, y)] − KL(q(z | x, y) ‖ p(z | y))     (nats per image, ≤ log p(x | y))

Why a per-class prior instead of N(0, I): with a fixed prior the encoder keeps the
class in z (it costs only ~log K nats of KL), so z ~ N(0, I) lands in other classes'
regions and conditional samples come out as the wrong digit, more so the longer one
trains (measured on 4,000 MNIST digits, 5 epochs: 60% of samples classified as the
requested class, 48% after 10 epochs; with p(z | y): 86%, and a better ELBO). With
p(z | y) a sample for class y is drawn from that class's own region.

Text conditioning (`conditioning = "text"`): the condition is a caption or free prompt,
embedded by a frozen sentence encoder (text_encoders.py, e ∈ R^384, L2-normalised); the
classes' captions ("the digit seven", "a photo of the digit seven", …) give each class k a
mean caption embedding ē_k (normalised, a buffer saved with the weights). The one-hot is
replaced by the prompt's soft class assignment

    c(e)     = softmax_k(e · ē_k / τ)                   (K,), τ = similarity_temperature
    prior    p(z | e) = N(Σ_k c_k m_k, diag(exp(Σ_k c_k s_k)))   the per-class table, mixed by c
    decoder  p(x | z, e) = Bernoulli(sigmoid(D([z, c]) + Σ_k c_k b_k))

so the per-class prior and output bias stay, each class's entry reached through the mean
of its captions: c(e) is e projected onto the K caption means (fixed, not learned).
Why not a learned projection c = W_c e with a prior network [m, s] = W_p c and a bias
b + W_b c (tried first): digit captions lie close together in the encoder's space (cos
≈ 0.8 between classes), and after 4 epochs on 400 digits only 23% of its class-prompted
samples were nearest their own class's mean image (100% here, the same run otherwise);
starting W_b at the least-squares fit of the class means made that 90%, but training went
unstable (held-out −ELBO 227 nats per image, against 154 here). The fixed similarity
separates the classes from the first step. A paraphrase ("a handwritten 7") is nearest
"the digit seven" and draws that class; a prompt between classes draws a mixture; a
text model cannot draw what no class caption describes. Training pairs each image with
a random caption of its label (the recipe); class indices passed to the model mean
their plain caption, so the ELBO of a text model is evaluated like a class model's.

Pixels are in [0, 1]; the Bernoulli log-likelihood of a grey level is the usual
(cross-entropy) choice for MNIST-like data. Works for any image size ≥ 8 and 1 or 3
channels: the encoder halves the size (at most 4 times) while it stays above 7, and
the decoder mirrors it exactly (output_padding restores odd sizes, e.g. 7 → 14 → 28).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.errors import GenloopError
from genloop.models.captions import LANGUAGES, class_captions, default_caption
from genloop.models.conditions import class_indices
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.registry import register_model
from genloop.models.rows import linear_rows, matmul_rows, per_item
from genloop.models.seeds import generators, standard_normal
from genloop.models.text_encoders import ENCODER_DIMS, text_encoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SAMPLING_PARAMS = ("temperature",)
CONDITIONINGS = ("class", "text")
LIKELIHOODS = ("bernoulli", "gaussian")
TEXT_FIELDS = ("conditioning", "text_encoder", "caption_languages", "similarity_temperature")
"""Config fields added with text conditioning; config.json files without them load as class models."""
PRIOR_SCALE = 10.0
"""The class prior's parameters are stored divided by this: Adam moves a parameter by about the
learning rate per step, and the prior means must travel several units within a short training."""


@dataclass
class VAEConfig:
    image_size: int = 28
    channels: int = 1
    classes: list[str] = field(default_factory=list)
    latent_dim: int = 16
    hidden_channels: int = 32
    beta: float = 1.0
    """Weight of the KL term in the training loss (β-VAE); evaluation always uses β = 1."""
    conditioning: str = "class"
    """class (one-hot of the label) | text (a caption or prompt, see the module docstring)."""
    text_encoder: str = "minilm"
    """Text conditioning only: minilm (English) or e5 (Chinese + English)."""
    caption_languages: list[str] = field(default_factory=list)
    """Languages of the training captions; default en for minilm, en + zh for e5."""
    similarity_temperature: float = 0.02
    """Text conditioning only: τ of c(e) = softmax(e · ē_k / τ); lower: prompts snap to one class."""
    likelihood: str = "bernoulli"
    """p(x | z, y): bernoulli (cross-entropy on grey levels; MNIST-like data) or gaussian
    (N(sigmoid(logits), σ_c²) per pixel with a learned σ per channel; photos, colour)."""

    def __post_init__(self) -> None:
        if not self.caption_languages:
            self.caption_languages = ["en", "zh"] if self.text_encoder == "e5" else ["en"]
        problems = self._condition_problems()
        if self.image_size < 8:
            problems.append(f"image_size must be at least 8 (got {self.image_size})")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3 (got {self.channels})")
        if not self.classes:
            problems.append("classes is empty (the model is conditioned on a class label)")
        if len(set(self.classes)) != len(self.classes):
            problems.append(f"classes has duplicates: {self.classes}")
        if self.likelihood not in LIKELIHOODS:
            problems.append(f"likelihood must be one of {', '.join(LIKELIHOODS)} (got {self.likelihood!r})")
        if self.latent_dim < 1 or self.hidden_channels < 1 or self.beta < 0:
            problems.append("latent_dim and hidden_channels must be ≥ 1 and beta ≥ 0")
        if problems:
            raise GenloopError(
                "invalid VAE config: " + "; ".join(problems),
                hint="fix [train] / [train.model] in genloop.toml, or label the dataset (`genloop annotate`)",
            )

    def _condition_problems(self) -> list[str]:
        problems = []
        if self.conditioning not in CONDITIONINGS:
            problems.append(
                f"conditioning must be one of {', '.join(CONDITIONINGS)} (got {self.conditioning!r})"
            )
        if self.text_encoder not in ENCODER_DIMS:
            problems.append(
                f"text_encoder must be one of {', '.join(ENCODER_DIMS)} (got {self.text_encoder!r})"
            )
        if not set(self.caption_languages) <= set(LANGUAGES):
            problems.append(
                f"caption_languages must be among {', '.join(LANGUAGES)} (got {self.caption_languages})"
            )
        if not isinstance(self.similarity_temperature, (int, float)) or not self.similarity_temperature > 0:
            problems.append(f"similarity_temperature must be > 0 (got {self.similarity_temperature!r})")
        return problems


def spatial_sizes(image_size: int) -> list[int]:
    """Feature-map sizes from input to bottleneck: 28 → [28, 14, 7], 32 → [32, 16, 8, 4]."""
    sizes = [image_size]
    while sizes[-1] > 7 and len(sizes) <= 4:
        sizes.append(sizes[-1] // 2)
    return sizes


@register_model("vae")
class ConditionalVAE(nn.Module):
    config_class = VAEConfig
    caption_embeddings: torch.Tensor  # (K, D) ē_k, a buffer of text models only

    def __init__(
        self,
        *,
        image_size: int = 28,
        channels: int = 1,
        classes: list[str],
        latent_dim: int = 16,
        hidden_channels: int = 32,
        beta: float = 1.0,
        conditioning: str = "class",
        text_encoder: str = "minilm",
        caption_languages: list[str] | None = None,
        similarity_temperature: float = 0.02,
        likelihood: str = "bernoulli",
    ) -> None:
        super().__init__()
        self.config = VAEConfig(
            image_size,
            channels,
            list(classes),
            latent_dim,
            hidden_channels,
            beta,
            conditioning,
            text_encoder,
            list(caption_languages or []),
            similarity_temperature,
            likelihood,
        )
        text = conditioning == "text"
        sizes = spatial_sizes(image_size)
        widths = [channels] + [hidden_channels * 2 ** min(i, 2) for i in range(len(sizes) - 1)]
        self._bottleneck = (widths[-1], sizes[-1], sizes[-1])  # (C', H', W')
        flat = widths[-1] * sizes[-1] ** 2
        num_classes = len(classes)
        encoder: list[nn.Module] = []
        for c_in, c_out in pairwise(widths):
            encoder += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*encoder)
        self.to_posterior = nn.Linear(flat + num_classes, 2 * latent_dim)  # → [mu, logvar]
        self.from_latent = nn.Linear(latent_dim + num_classes, flat)
        decoder: list[nn.Module] = []
        steps = list(zip(widths[:0:-1], widths[-2::-1], sizes[-2::-1], strict=True))
        for i, (c_in, c_out, target) in enumerate(steps):
            # ConvTranspose2d(k=4, s=2, p=1) doubles the size; output_padding adds the odd pixel back
            decoder.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, output_padding=target % 2))
            if i < len(steps) - 1:
                decoder.append(nn.LeakyReLU(0.2))
        self.decoder = nn.Sequential(*decoder)
        # a per-class, per-pixel logit added to the decoder output: set to the log-odds of each
        # class's mean image before training (init_output_bias), so the decoder learns the residual
        self.output_bias = nn.Parameter(torch.zeros(num_classes, channels, image_size, image_size))
        self.prior_mean = nn.Parameter(torch.zeros(num_classes, latent_dim))  # (K, Z), × PRIOR_SCALE
        self.prior_logvar = nn.Parameter(torch.zeros(num_classes, latent_dim))  # (K, Z), × PRIOR_SCALE
        if likelihood == "gaussian":  # log σ_c per channel, learned; σ = 0.1 at the start
            self.log_sigma = nn.Parameter(torch.full((channels,), math.log(0.1)))
        if text:  # ē_k, (K, D): computed here, and saved so the weights file holds what c(e) uses
            self.register_buffer("caption_embeddings", self._caption_means())

    @classmethod
    def build(cls, config: VAEConfig) -> ConditionalVAE:
        return cls(**asdict(config))

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    @property
    def is_text(self) -> bool:
        return self.config.conditioning == "text"

    def _vector(self, y: torch.Tensor, *, exact_rows: bool = False) -> torch.Tensor:
        """The condition vector c (B, K): onehot(y), or the soft class assignment c(e) of a text model.

        `y` is (B,) class indices, or for a text model also (B, D) text embeddings.
        `exact_rows`: products whose rows do not depend on the batch (models/rows.py).
        """
        dtype = self.from_latent.weight.dtype
        if not self.is_text:
            return F.one_hot(y, len(self.config.classes)).to(dtype)  # (B, K)
        if not y.is_floating_point():  # class indices mean their plain caption
            y = self._prompts(len(y), self._class_captions(y.tolist())).to(y.device)
        captions = self.caption_embeddings.to(dtype).T  # (D, K)
        similarity = (
            matmul_rows(y.to(dtype), captions) if exact_rows else y.to(dtype) @ captions
        )  # (B, K) e · ē_k
        return torch.softmax(similarity / self.config.similarity_temperature, dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x).flatten(1)  # (B, C'·H'·W')
        mu, logvar = self.to_posterior(torch.cat([features, self._vector(y)], dim=1)).chunk(2, dim=1)
        return mu, logvar  # (B, Z) each

    def prior(self, y: torch.Tensor, *, exact_rows: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of p(z | y), (B, Z) each."""
        if self.is_text:  # the class table mixed by c(e): Σ_k c_k m_k, Σ_k c_k s_k
            c = self._vector(y, exact_rows=exact_rows)
            mix = matmul_rows if exact_rows else torch.matmul
            return mix(c, self.prior_mean) * PRIOR_SCALE, mix(c, self.prior_logvar) * PRIOR_SCALE
        return self.prior_mean[y] * PRIOR_SCALE, self.prior_logvar[y] * PRIOR_SCALE

    def decode(self, z: torch.Tensor, y: torch.Tensor, *, sampling: bool = False) -> torch.Tensor:
        """Logits (B, C, H, W).

        `sampling`: every image's bits independent of its batch, and fast on the CPU. The
        products run row by row (models/rows.py; a batched `F.linear` differs in the last
        bit), and the transposed convolutions on NHWC feature maps (channels-last): 1.5–2×
        faster at batch 64, each image still computed alone, and the same bits as NCHW
        (tests/models/test_vae.py).
        """
        c = self._vector(y, exact_rows=sampling)  # (B, K)
        latent = torch.cat([z, c], dim=1)  # (B, Z + K)
        hidden = F.leaky_relu(
            linear_rows(latent, self.from_latent) if sampling else self.from_latent(latent), 0.2
        )
        features = hidden.view(-1, *self._bottleneck)  # (B, C', H', W')
        if sampling:
            features = features.contiguous(memory_format=torch.channels_last)
        logits = self.decoder(features).contiguous()  # (B, C, H, W)
        if not self.is_text:
            return logits + self.output_bias[y]
        if sampling:  # + Σ_k c_k b_k
            return logits + matmul_rows(c, self.output_bias.flatten(1)).view_as(logits)
        return logits + torch.einsum("bk,kchw->bchw", c, self.output_bias)

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Set the output bias to logit(mean image of each class) of training data x (N, C, H, W).

        Adam moves a parameter by about the learning rate per step, so a bias learned from
        zero needs thousands of steps to reach the background's log-odds (≈ −7); starting
        there makes the first epochs learn shapes instead (cf. the output-bias init of
        Burda et al. 2016, https://arxiv.org/abs/1509.00519).
        """
        overall = x.mean(0)  # (C, H, W)
        for k in range(len(self.config.classes)):
            members = x[y == k]
            mean = members.mean(0) if len(members) else overall
            self.output_bias[k] = torch.logit(mean.clamp(1e-3, 1 - 1e-3)).to(self.output_bias)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1], y (B,) class indices or (B, D) text embeddings (text model)
        → (logits (B, C, H, W), mu, logvar (B, Z))."""
        mu, logvar = self.encode(x, y)
        # reparameterisation: z = mu + sigma · eps, eps ~ N(0, I)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, Z)
        return self.decode(z, y), mu, logvar

    def _terms(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction NLL −log p(x | z, y) and KL(q ‖ p), both (B,) in nats."""
        logits, mu, logvar = self(x, y, generator=generator)
        recon = self._reconstruction_nll(logits, x)
        prior_mu, prior_logvar = self.prior(y)
        # KL(N(mu, σ²) ‖ N(m, s²)) = ½ Σ [log s² − log σ² + (σ² + (mu − m)²) / s² − 1]
        kl = 0.5 * (
            prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1.0
        ).sum(1)
        return recon, kl

    def _reconstruction_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x | z, y) per image, (B,) nats, from the decoder's logits (B, C, H, W).

        bernoulli: Σ BCE(sigmoid(logits), x)
        gaussian:  Σ (x − μ)² / (2σ_c²) + log σ_c + ½ log 2π,   μ = sigmoid(logits)
        """
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        log_sigma = self.log_sigma.view(1, -1, 1, 1)  # (1, C, 1, 1)
        mean = torch.sigmoid(logits)
        nll = (x - mean).pow(2) / (2 * torch.exp(2 * log_sigma)) + log_sigma + 0.5 * math.log(2 * math.pi)
        return nll.flatten(1).sum(1)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Training loss: mean over the batch of recon + β·KL (the β-weighted negative ELBO, nats)."""
        recon, kl = self._terms(x, y, generator)
        recon_mean, kl_mean = recon.mean(), kl.mean()
        return {"loss": recon_mean + self.config.beta * kl_mean, "recon": recon_mean, "kl": kl_mean}

    def elbo(
        self, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-image ELBO (β = 1, one posterior sample), (B,) in nats; a lower bound on log p(x | y)."""
        recon, kl = self._terms(x, y, generator)
        return -(recon + kl)

    @torch.no_grad()
    def sample(
        self, n: int, condition: Any = None, *, seed: int, seeds: Sequence[int] | None = None, **params: Any
    ) -> torch.Tensor:
        """`n` images (n, C, H, W) in [0, 1]: the likelihood's means sigmoid(logits).

        `condition` holds n class indices (positions in `classes`, or 1 for all); None
        cycles through the classes. A text model also takes a prompt string, a list of n
        prompts, or (n, D) text embeddings; a class index means its caption ("the digit
        seven"). The same seed (and condition) gives the same images. `temperature` scales the
        prior's standard deviation (default 1.0; lower: more typical, less varied). `seeds` (one
        per image) makes image i exactly `sample(1, …, seed=seeds[i])` (see models/seeds.py).
        """
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the vae family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        labels = self._condition(n, condition)  # (n,) class indices or (n, D) embeddings
        generator = generators(n, seed, seeds)  # CPU noise: same images on every device
        eps = standard_normal((n, self.config.latent_dim), generator)  # (n, Z)
        labels = labels.to(self.from_latent.weight.device)
        prior_mu, prior_logvar = self.prior(labels, exact_rows=True)
        # z ~ p(z | y): z = m_y + s_y · temperature · eps
        z = prior_mu + torch.exp(0.5 * prior_logvar) * float(params.get("temperature", 1.0)) * eps.to(
            prior_mu
        )
        # per image: torch.sigmoid's bits can depend on the image's place in the batch (rows.py)
        return per_item(torch.sigmoid, self.decode(z, labels, sampling=True))

    def _condition(self, n: int, condition: Any) -> torch.Tensor:
        """`condition` → (n,) class indices, or (n, D) text embeddings (text model)."""
        if self.is_text:
            if isinstance(condition, str):
                return self._prompts(n, [condition])
            if (
                isinstance(condition, (list, tuple))
                and condition
                and all(isinstance(c, str) for c in condition)
            ):
                return self._prompts(n, list(condition))
            if isinstance(condition, torch.Tensor) and condition.is_floating_point():
                return self._text_vectors(n, condition)
        text = "a text model also takes prompt strings or (n, D) embeddings" if self.is_text else ""
        return class_indices(n, condition, self.config.classes, also_accepts=text)

    def _caption_means(self) -> torch.Tensor:
        """(K, D): each class's mean caption embedding over its training captions."""
        per_class = class_captions(self.config.classes, self.config.caption_languages)
        flat = text_encoder(self.config.text_encoder).encode([c for texts in per_class for c in texts])
        return F.normalize(flat.view(len(per_class), len(per_class[0]), -1).mean(1), dim=1)

    def _class_captions(self, labels: list[int]) -> list[str]:
        """The plain caption of each class, in the first caption language ("the digit seven")."""
        language = self.config.caption_languages[0]
        return [default_caption(self.config.classes[k], language) for k in labels]

    def _prompts(self, n: int, prompts: list[str]) -> torch.Tensor:
        if len(prompts) == 1:
            prompts = prompts * n
        if len(prompts) != n:
            raise GenloopError(f"condition must hold 1 or {n} prompts (got {len(prompts)})")
        return self._text_vectors(n, text_encoder(self.config.text_encoder).encode(prompts))

    def _text_vectors(self, n: int, vectors: torch.Tensor) -> torch.Tensor:
        dim = ENCODER_DIMS[self.config.text_encoder]
        if vectors.shape != (n, dim):
            raise GenloopError(
                f"text condition must be ({n}, {dim}) embeddings (got {tuple(vectors.shape)})",
                hint=f"embed prompts with models.text_encoders.text_encoder({self.config.text_encoder!r})",
            )
        return vectors.float()

    def bits_per_dim(self, nats_per_image: float) -> float:
        """Nats per image → bits per pixel-channel: nats / (C·H·W · ln 2)."""
        dims = self.config.channels * self.config.image_size**2
        return nats_per_image / (dims * math.log(2))

    def save(self, directory: Path) -> None:
        """Write `config.json` (family + the config's fields) and `model.safetensors`."""
        config = asdict(self.config)
        if not self.is_text:  # a class model's config.json stays as before text conditioning existed
            config = {k: v for k, v in config.items() if k not in TEXT_FIELDS}
        if self.config.likelihood == "bernoulli":  # likewise for the original likelihood
            del config["likelihood"]
        save_model_files(directory, family="vae", config=config, module=self)

    @classmethod
    def load(cls, directory: Path) -> ConditionalVAE:
        model = cls(**read_model_config(directory, family="vae", config_class=VAEConfig))
        load_model_weights(model, directory)
        return model

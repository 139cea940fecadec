"""A decoder-only Transformer over REMI event tokens (Music Transformer-style language model:
Huang et al. 2018, https://arxiv.org/abs/1809.04281; REMI events: Huang & Yang 2020), output as MIDI.

    input   [COND_y, BOS, Bar, Position_0, Pitch_60, Duration_1.0.8, …]   (B, T), T ≤ block_size
    embed   token + learned position                                       (B, T, C)
    blocks  n_layer × pre-LN [x + attn(LN(x)), x + MLP(LN(x))], causal    (B, T, C)
    head    LN, then the event embeddings transposed (tied weights)        (B, T, V)

    loss = −(1/N) Σ_t log p(x_{t+1} | x_≤t)     (nats per event token; PAD targets ignored)

The class (e.g. "major" / "minor" for the chorales) is a condition token that always
sits at position 0 of the context, in training windows cut from the middle of a piece
as well as in sampling, where the context slides over long pieces as
[COND_y] + the last block_size − 1 events. A dataset without labels gives one
condition token and an unconditional model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.errors import GenloopError
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.music_tokens import MusicTokenizer, MusicTokenizerConfig
from genloop.models.registry import register_model
from genloop.models.seeds import categorical, generators
from genloop.storage import atomic_write_bytes

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
SAMPLING_PARAMS = ("max_tokens", "temperature", "top_k")
KeyValues = tuple[torch.Tensor, torch.Tensor]  # one layer's cached keys and values, (B, nh, T, hs) each
HINT = "fix [train.model] in genloop.toml (options: n_layer, n_head, n_embd, block_size, dropout, tokenizer)"


@dataclass
class MusicConfig:
    classes: list[str] = field(default_factory=list)
    """Condition labels; empty: an unconditional model (one condition token)."""
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    """Context length in tokens, the condition token included."""
    dropout: float = 0.1
    tokenizer: dict[str, Any] = field(default_factory=dict)
    """MusicTokenizerConfig fields; defaults for the ones left out."""
    tokenizer_fingerprint: str | None = None
    """Set when the model is built; a model whose tokenizer rebuilds differently is refused."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("n_layer", "n_head", "n_embd"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer (got {getattr(self, name)!r})")
        if not problems and self.n_embd % self.n_head:
            problems.append(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not isinstance(self.block_size, int) or self.block_size < 8:
            problems.append(f"block_size must be an integer ≥ 8 (got {self.block_size!r})")
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout!r})")
        if len(set(self.classes)) != len(self.classes):
            problems.append(f"classes has duplicates: {self.classes}")
        if not isinstance(self.tokenizer, dict):
            problems.append(f"tokenizer must be a table of tokenizer options (got {self.tokenizer!r})")
        if problems:
            raise GenloopError("invalid music model config: " + "; ".join(problems), hint=HINT)
        MusicTokenizerConfig.from_dict(self.tokenizer)  # its own clear error

    @classmethod
    def from_options(cls, options: dict[str, Any], *, classes: list[str]) -> MusicConfig:
        """From `[train.model]` (unknown keys are errors naming the accepted ones)."""
        known = {f.name for f in fields(cls)} - {"classes", "tokenizer_fingerprint"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GenloopError(f"unknown [train.model] option(s) for the music family: {unknown}", hint=HINT)
        return cls(classes=list(classes), **options)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: MusicConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KeyValues | None = None) -> tuple[torch.Tensor, KeyValues]:
        """x (B, T, C) → (B, T, C) and this layer's keys/values (B, nh, T_past + T, hs) each.

        With `cache` (sampling), x holds the next token(s) only and attends to the cached past.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hs)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # one new token may see every cached one; a whole sequence needs the causal mask
        causal = cache is None or T > 1
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, C))), (k, v)


class Block(nn.Module):
    def __init__(self, config: MusicConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor, cache: KeyValues | None = None) -> tuple[torch.Tensor, KeyValues]:
        attended, keys_values = self.attn(self.ln_1(x), cache)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), keys_values


@register_model("music")
class MusicTransformer(nn.Module):
    config_class = MusicConfig

    def __init__(self, config: MusicConfig) -> None:
        super().__init__()
        self.tokenizer = MusicTokenizer(MusicTokenizerConfig.from_dict(config.tokenizer))
        fingerprint = self.tokenizer.fingerprint
        if config.tokenizer_fingerprint not in (None, fingerprint):
            raise GenloopError(
                f"this music model was trained with tokenizer {config.tokenizer_fingerprint}, but its "
                f"tokenizer options now build tokenizer {fingerprint} (another miditok version?)",
                hint="install the miditok version the model was trained with, or retrain it",
            )
        self.config = MusicConfig(**{**asdict(config), "tokenizer_fingerprint": fingerprint})
        self.events = self.tokenizer.vocab_size  # V: what the head predicts
        self.conditions = max(1, len(config.classes))
        # event ids 0..V-1, then one condition token per class: V..V+K-1
        self.token_embedding = nn.Embedding(self.events + self.conditions, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():  # GPT-2: scale residual projections by 1/√(2L)
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / (2 * config.n_layer) ** 0.5)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @classmethod
    def build(cls, config: MusicConfig) -> MusicTransformer:
        return cls(config)

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    def condition_token(self, labels: torch.Tensor) -> torch.Tensor:
        """Class indices (B,) → condition token ids (B,)."""
        return labels + self.events

    # -- training ----------------------------------------------------------------------------------

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) token ids, T ≤ block_size → next-event logits (B, T, V)."""
        return self._run(idx, None)[0]

    def _run(self, idx: torch.Tensor, caches: list[KeyValues] | None) -> tuple[torch.Tensor, list[KeyValues]]:
        """Logits of idx (B, T) that follows the cached positions, and the grown caches."""
        start = caches[0][0].shape[2] if caches else 0
        T = idx.shape[1]
        if self.config.block_size < start + T:
            raise GenloopError(f"sequence of {start + T} tokens exceeds block_size {self.config.block_size}")
        positions = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        grown = []
        for i, block in enumerate(self.blocks):
            x, keys_values = block(x, caches[i] if caches else None)
            grown.append(keys_values)
        # tied output: logits = LN(x) · E[:V]ᵀ (condition tokens are never predicted)
        return F.linear(self.ln_f(x), self.token_embedding.weight[: self.events]), grown

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per event) of targets (B, T) given inputs (B, T); PAD ignored."""
        logits = self(inputs)
        return F.cross_entropy(
            logits.float().flatten(0, 1), targets.flatten(), ignore_index=self.tokenizer.pad_id
        )

    # -- sampling ----------------------------------------------------------------------------------

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
        """`n` event sequences (n, L) of token ids: BOS, events, EOS, then PAD.

        `condition` holds n class indices (None cycles through the classes). The same seed
        gives the same sequences. `max_tokens` (default 512) bounds the events, `temperature`
        (default 1.0) divides the logits, `top_k` (default none) keeps the k likeliest events.
        `seeds` (one per sequence) makes row i exactly `sample(1, …, seed=seeds[i])` (row i then
        ends with PAD only up to its own EOS; trim with the tokenizer's decode).
        """
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the music family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        max_tokens = int(params.get("max_tokens") or 512)
        temperature = float(params.get("temperature") or 1.0)
        top_k = params.get("top_k")
        if max_tokens < 1 or temperature <= 0 or (top_k is not None and int(top_k) < 1):
            raise GenloopError(
                f"max_tokens must be ≥ 1, temperature > 0 and top_k ≥ 1 "
                f"(got {max_tokens}, {temperature}, {top_k})"
            )
        device = self.token_embedding.weight.device
        generator = generators(n, seed, seeds)  # CPU draws: the same music on every device
        cond = self.condition_token(self._condition(n, condition)).to(device)  # (n,)
        events = torch.full((n, 1), self.tokenizer.bos_id, dtype=torch.long, device=device)  # (n, 1)
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        caches: list[KeyValues] | None = None
        for _ in range(max_tokens):
            if caches is None or caches[0][0].shape[2] >= self.config.block_size:
                # (re)start from the whole context: the first step, and every step once the context
                # slides ([COND] + the last block_size − 1 events; positions shift, the cache cannot)
                context = torch.cat([cond[:, None], events[:, -(self.config.block_size - 1) :]], dim=1)
                all_logits, caches = self._run(context, None)
            else:
                all_logits, caches = self._run(events[:, -1:], caches)  # the newest event only
            logits = all_logits[:, -1, :].float() / temperature  # (n, V)
            logits[:, [self.tokenizer.pad_id, self.tokenizer.bos_id]] = -torch.inf
            if top_k is not None:
                kth = torch.topk(logits, min(int(top_k), logits.shape[1])).values[:, -1:]  # (n, 1)
                logits[logits < kth] = -torch.inf
            probs = torch.softmax(logits, dim=1).cpu()
            following = categorical(probs, generator).to(device)  # (n, 1)
            following[finished] = self.tokenizer.pad_id
            events = torch.cat([events, following], dim=1)
            finished |= following[:, 0] == self.tokenizer.eos_id
            if finished.all():
                break
        return events.cpu()

    def generate_midi(
        self,
        n: int,
        condition: torch.Tensor | None = None,
        *,
        seed: int,
        seeds: Sequence[int] | None = None,
        **params: Any,
    ) -> list[bytes]:
        """`n` Standard MIDI Files sampled as in `sample` (same seed, same bytes)."""
        rows = self.sample(n, condition, seed=seed, seeds=seeds, **params)
        return [self.tokenizer.decode(row.tolist()) for row in rows]

    def _condition(self, n: int, condition: torch.Tensor | None) -> torch.Tensor:
        if condition is None:
            return torch.arange(n) % self.conditions
        labels = torch.as_tensor(condition, dtype=torch.long).reshape(-1).cpu()
        if labels.numel() == 1 and n > 1:
            labels = labels.expand(n)
        if labels.numel() != n or (labels.numel() and (labels.min() < 0 or labels.max() >= self.conditions)):
            raise GenloopError(
                f"condition must hold {n} class indices in 0..{self.conditions - 1} "
                f"(got {labels.tolist()[:10]})",
                hint=f"classes are {self.config.classes or '(none: unconditional)'}",
            )
        return labels

    # -- persistence -------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """`config.json` (family, config, tokenizer options + fingerprint), weights, miditok params."""
        config = asdict(self.config)
        config["tokenizer"] = self.tokenizer.to_dict()  # every option, defaults included
        save_model_files(directory, family="music", config=config, module=self)
        atomic_write_bytes(Path(directory) / TOKENIZER_FILE, self.tokenizer.params_json().encode("utf-8"))

    @classmethod
    def load(cls, directory: Path) -> MusicTransformer:
        model = cls(MusicConfig(**read_model_config(directory, family="music", config_class=MusicConfig)))
        load_model_weights(model, directory)
        return model.eval()

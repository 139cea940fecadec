"""A decoder-only Transformer language model (GPT-2 layout, Radford et al. 2019; nanoGPT-sized).

    x = wte[idx] + wpe[pos]                                  (B, T, C)
    for each block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      pre-LN
        attn: causal multi-head self-attention, F.scaled_dot_product_attention
        mlp:  Linear(C, 4C) → GELU → Linear(4C, C)
    logits = ln_f(x) @ wteᵀ                                  (B, T, V)   weight tying (Press & Wolf 2017)

    loss = mean cross-entropy of the next token (nats per token)

The model carries its tokenizer (char or byte-level BPE, `genloop.models.tokenizers`) and
saves it beside the weights, so a model directory alone is enough to generate text.
Generation keeps a key/value cache per layer (`KVCache`: block-sized buffers written in place;
each step feeds one new token).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.errors import GenloopError
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.registry import register_model
from genloop.models.sampling import SamplingParams, cut_at_stop, generate_ids
from genloop.models.seeds import generators
from genloop.models.tokenizers import TOKENIZER_KINDS, TextTokenizer, load_tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class GPTConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    """Context length in tokens."""
    dropout: float = 0.0
    vocab_size: int = 0
    """Tokens the model predicts. For `tokenizer = "bpe"` the BPE training target as given in
    [train.model]; the trained model's config holds the tokenizer's actual size."""
    tokenizer: str = "char"
    """`char` (one token per character) or `bpe` (byte-level BPE, Hugging Face tokenizers)."""

    def __post_init__(self) -> None:
        problems = []
        if self.n_layer < 1 or self.n_head < 1 or self.n_embd < 1:
            problems.append(
                f"n_layer, n_head and n_embd must be ≥ 1 (got {self.n_layer}, {self.n_head}, {self.n_embd})"
            )
        elif self.n_embd % self.n_head:
            problems.append(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets "
                f"n_embd / n_head dimensions; try n_embd = {self.n_head * max(1, self.n_embd // self.n_head)}"
            )
        if self.block_size < 2:
            problems.append(f"block_size must be ≥ 2 tokens (got {self.block_size})")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.tokenizer not in TOKENIZER_KINDS:
            problems.append(f"tokenizer must be one of {', '.join(TOKENIZER_KINDS)} (got {self.tokenizer!r})")
        if self.vocab_size < 0 or (self.tokenizer == "bpe" and 0 < self.vocab_size < 257):
            problems.append(f"vocab_size must be ≥ 257 for bpe (256 bytes + <eos>; got {self.vocab_size})")
        if problems:
            raise GenloopError("invalid gpt config: " + "; ".join(problems), hint="fix [train.model]")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GPTConfig:
        """A config from `[train.model]`; unknown keys are errors that list the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GenloopError(
                f"unknown [train.model] option(s) {unknown} for the gpt family",
                hint=f"gpt options: {', '.join(sorted(known))}",
            )
        if options.get("tokenizer", "char") == "char" and options.get("vocab_size"):
            raise GenloopError(
                '[train.model] vocab_size applies to tokenizer = "bpe" only',
                hint="the char tokenizer's vocabulary is the training text's characters; remove vocab_size",
            )
        try:
            return cls(**options)
        except TypeError as exc:
            raise GenloopError(f"invalid [train.model] value: {exc}") from None


class KVCache:
    """The keys and values of the positions fed so far, per layer, in buffers written in place.

    Per layer one (B, 2, nh, block_size, hs) tensor: `[:, 0]` keys, `[:, 1]` values; the
    positions from `length` on hold zeros and are masked out of attention. A buffer of the
    full block (rather than one that grows by `torch.cat`) costs no copy per step, and makes a
    one-token step attend over the same block_size positions whatever the row's length, so
    rows of different lengths batched together (`genloop.generate.token_rows`) compute
    bit for bit what each computes alone.
    """

    def __init__(self, layers: list[torch.Tensor] | None = None, length: int = 0) -> None:
        self.layers = layers or []
        self.length = length
        """Positions the buffers hold."""


def attention_bias(positions: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask (B, size) of one-token steps at `positions` (B,): 0 at the
    positions up to the row's own (its cache and itself), −inf after them."""
    after = torch.arange(size, device=positions.device) > positions.unsqueeze(-1)
    return torch.zeros(after.shape, dtype=dtype, device=positions.device).masked_fill_(after, float("-inf"))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        start: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) at positions start…start+T−1; `kv` this layer's cache buffer (B, 2, nh,
        block_size, hs), written at those positions; `mask` (B or 1, 1, 1, block_size) the
        additive mask of a one-token step (`attention_bias`)."""
        B, T, C = x.shape
        hs = C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C)
        q, k, v = (
            t.view(B, T, self.n_head, hs).transpose(1, 2) for t in qkv.split(C, dim=2)
        )  # (B, nh, T, hs)
        dropout = self.dropout if self.training else 0.0
        if kv is None or start == 0:  # no cache, or the prompt: causal attention over x alone
            if kv is not None:
                kv[:, :, :, :T] = qkv[:, :, C:].view(B, T, 2, self.n_head, hs).permute(0, 2, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:  # one new token: it attends to every cached position and itself, the rest masked
            kv[:, :, :, start] = qkv[:, 0, C:].view(B, 2, self.n_head, hs)
            y = F.scaled_dot_product_attention(q, kv[:, 0], kv[:, 1], attn_mask=mask, dropout_p=dropout)
        # y (B, nh, T, hs)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
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

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor | None = None,
        start: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start, mask)
        return x + self.mlp(self.ln_2(x))


@register_model("gpt")
class GPT(nn.Module):
    config_class = GPTConfig

    def __init__(
        self,
        *,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        block_size: int = 64,
        dropout: float = 0.0,
        vocab_size: int,
        tokenizer: str = "char",
        text_tokenizer: TextTokenizer | None = None,
    ) -> None:
        super().__init__()
        self.config = GPTConfig(n_layer, n_head, n_embd, block_size, dropout, vocab_size, tokenizer)
        if vocab_size < 2:
            raise GenloopError(f"a gpt model needs vocab_size ≥ 2 (got {vocab_size})")
        if text_tokenizer is not None and text_tokenizer.vocab_size != vocab_size:
            raise GenloopError(
                f"the tokenizer has {text_tokenizer.vocab_size} tokens but the model {vocab_size}"
            )
        self.text_tokenizer = text_tokenizer
        self.wte = nn.Embedding(vocab_size, n_embd)  # also the output projection (tied)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(self.config) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight") or name.endswith("mlp.2.weight"):
                # GPT-2: residual projections scaled by 1/√(2·n_layer) so the residual stream's
                # variance does not grow with depth
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @classmethod
    def build(cls, config: GPTConfig, tokenizer: TextTokenizer | None = None) -> GPT:
        return cls(**asdict(config), text_tokenizer=tokenizer)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    @property
    def tokenizer(self) -> TextTokenizer:
        if self.text_tokenizer is None:
            raise GenloopError(
                "this gpt model has no tokenizer", hint="build it with one, or load a saved model"
            )
        return self.text_tokenizer

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """idx (B, T) token ids → logits (B, T, V); with `targets` (B, T), the mean loss instead.

        With a `cache`: an empty one takes the prompt (T tokens), then one token per call."""
        start = cache.length if cache is not None else 0
        B, T = idx.shape
        if start + T > self.config.block_size:
            raise GenloopError(f"{start + T} tokens exceed block_size {self.config.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        mask = None
        if cache is not None:
            if start == 0:
                hs = self.config.n_embd // self.config.n_head
                shape = (B, 2, self.config.n_head, self.config.block_size, hs)
                cache.layers = [x.new_zeros(shape) for _ in self.blocks]
            elif T > 1:
                raise GenloopError("the KV cache takes one new token per step after the prompt")
            else:
                mask = attention_bias(pos, self.config.block_size, x.dtype).view(1, 1, 1, -1)
        for i, block in enumerate(self.blocks):
            x = block(x, cache.layers[i] if cache is not None else None, start, mask)
        if cache is not None:
            cache.length = start + T
        logits = F.linear(self.ln_f(x), self.wte.weight)  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))

    # -- generation ---------------------------------------------------------------------------------

    def new_cache(self) -> KVCache:
        return KVCache()

    def select_rows(self, cache: KVCache, index: torch.Tensor) -> KVCache:
        """The cache of rows `index` (B,) only."""
        return KVCache([layer.index_select(0, index) for layer in cache.layers], cache.length)

    def next_logits(self, idx: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """Logits (B, V) of the token after `idx` (B, T)."""
        return self(idx, cache=cache)[:, -1, :]

    @torch.no_grad()
    def generate_ids(
        self,
        prompt_ids: torch.Tensor,
        *,
        seed: int,
        seeds: Sequence[int] | None = None,
        use_cache: bool = True,
        **params: Any,
    ) -> list[list[int]]:
        """Continue prompt ids (B, T0); the new ids of each row. Deterministic for a seed; with
        `seeds` (one per row) row i draws from its own generator, independent of its batch."""
        sampling = SamplingParams.from_params(params)
        device = self.wte.weight.device
        was_training = self.training
        self.eval()
        try:
            return generate_ids(
                self,
                prompt_ids.to(device),
                sampling,
                generator=generators(prompt_ids.size(0), seed, seeds),
                eos_id=self.tokenizer.eos_id,
                decode=self.tokenizer.decode,
                use_cache=use_cache,
            )
        finally:
            self.train(was_training)

    def generate_text(self, prompts: list[str], *, seed: int = 0, **params: Any) -> list[str]:
        """The continuation of each prompt (without the prompt), cut at the first stop string.

        Parameters: temperature (0 = greedy), top_k, top_p, repetition_penalty, max_tokens,
        stop (strings). Prompt i is sampled with seed + i, so a prompt's text does not depend
        on the prompts before it. A prompt starts after <eos>, like a record in training.
        """
        sampling = SamplingParams.from_params(params)
        texts = []
        for i, prompt in enumerate(prompts):
            ids = [self.tokenizer.eos_id, *self.tokenizer.encode(prompt)]
            new = self.generate_ids(torch.tensor([ids]), seed=seed + i, **params)[0]
            texts.append(cut_at_stop(self.tokenizer.decode(new), sampling.stop))
        return texts

    @torch.no_grad()
    def sample(
        self,
        n: int,
        condition: str | Sequence[str] | None = None,
        *,
        seed: int,
        seeds: Sequence[int] | None = None,
        **params: Any,
    ) -> list[str]:
        """`n` texts (family protocol), the rows decoded together, each after <eos>.

        `condition`: None (unprompted), one prompt for all n, or n prompts; the text returned
        is the continuation. `seeds` (one per text) makes text i exactly
        `sample(1, prompt_i, seed=seeds[i])`: rows draw from their own generators, and rows
        are batched by prompt length (the model has no padding mask).
        """
        sampling = SamplingParams.from_params(params)
        if condition is None or isinstance(condition, str):
            prompts = [condition or ""] * n
        else:
            prompts = [str(c) for c in condition]
        if len(prompts) != n:
            raise GenloopError(f"condition must be one prompt or {n} prompts (got {len(prompts)})")
        if seeds is not None and len(seeds) != n:
            raise GenloopError(f"seeds must hold one seed per text: {n} texts, {len(seeds)} seeds")
        encoded = [[self.tokenizer.eos_id, *self.tokenizer.encode(p)] for p in prompts]
        texts: list[str] = [""] * n
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            by_length.setdefault(len(ids), []).append(i)
        if seeds is None and len(by_length) > 1:
            raise GenloopError("prompts of different lengths need `seeds` (one per prompt) to batch")
        for rows in by_length.values():
            start = torch.tensor([encoded[i] for i in rows], dtype=torch.long)  # (b, T0)
            row_seeds = None if seeds is None else [seeds[i] for i in rows]
            for i, ids in zip(
                rows, self.generate_ids(start, seed=seed, seeds=row_seeds, **params), strict=True
            ):
                texts[i] = cut_at_stop(self.tokenizer.decode(ids), sampling.stop)
        return texts

    # -- files --------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """config.json (family, config, tokenizer fingerprint), model.safetensors, tokenizer file."""
        config = {**asdict(self.config), "tokenizer_fingerprint": self.tokenizer.fingerprint()}
        save_model_files(directory, family="gpt", config=config, module=self)
        self.tokenizer.save(Path(directory))

    @classmethod
    def load(cls, directory: Path) -> GPT:
        directory = Path(directory)
        config = read_model_config(
            directory, family="gpt", config_class=GPTConfig, extras=("tokenizer_fingerprint",)
        )
        fingerprint = config.pop("tokenizer_fingerprint", None)
        tokenizer = load_tokenizer(config.get("tokenizer", "char"), directory)
        if fingerprint is not None and tokenizer.fingerprint() != fingerprint:
            raise GenloopError(
                f"{directory}: the tokenizer file is not the one this model was trained with",
                hint="the directory mixes files of two models; retrain or restore it",
            )
        model = cls(**config, text_tokenizer=tokenizer)
        load_model_weights(model, directory)
        return model


def saved_tokenizer_fingerprint(directory: Path) -> str | None:
    """The tokenizer fingerprint recorded in a saved model's (or checkpoint's) config.json."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("tokenizer_fingerprint")

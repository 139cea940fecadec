"""Autoregressive sampling for token models: logits processors and the decoding loop.

Per step, on the last position's logits z (B, V), in this order:

    repetition penalty   z_i ← z_i / p if z_i > 0 else z_i · p, for every token i already in the
                         context (prompt + generated), p = repetition_penalty (CTRL, Keskar et al.
                         2019, https://arxiv.org/abs/1909.05858)
    temperature          z ← z / T;  T = 0 means greedy (argmax)
    top-k                keep the k largest logits
    top-p (nucleus)      keep the smallest set of tokens whose probability sums to ≥ p
                         (Holtzman et al. 2020, https://arxiv.org/abs/1904.09751)
    draw                 one token from softmax(z) with a CPU generator seeded by the caller,
                         so the same seed gives the same text on every device

A row ends at <eos>, after `max_tokens` new tokens, or when its text contains a stop
string (the text is cut before it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from genloop.errors import GenloopError
from genloop.models.seeds import categorical

SAMPLING_PARAMS = ("temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "stop")


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    max_tokens: int = 200
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be ≥ 0 (0 = greedy; got {self.temperature})")
        if self.top_k is not None and self.top_k < 1:
            problems.append(f"top_k must be ≥ 1 (got {self.top_k})")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0 (1 = off; got {self.repetition_penalty})")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be ≥ 1 (got {self.max_tokens})")
        if any(not isinstance(s, str) or not s for s in self.stop):
            problems.append(f"stop must be a list of non-empty strings (got {list(self.stop)})")
        if problems:
            raise GenloopError("invalid sampling parameters: " + "; ".join(problems))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SamplingParams:
        """Validate keyword parameters (`temperature=0.8, stop=["\\n"]`) into SamplingParams."""
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the gpt family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        values = dict(params)
        stop = values.get("stop")
        if isinstance(stop, str):
            values["stop"] = (stop,)
        elif stop is not None:
            values["stop"] = tuple(stop)
        return cls(**values)


def process_logits(logits: torch.Tensor, seen: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """logits (B, V) float, seen (B, V) bool (tokens in the context) → filtered logits (B, V)."""
    logits = logits.float().clone()
    if params.repetition_penalty != 1.0:
        penalised = torch.where(
            logits > 0, logits / params.repetition_penalty, logits * params.repetition_penalty
        )
        logits = torch.where(seen, penalised, logits)
    if params.temperature > 0:
        logits = logits / params.temperature
    if params.top_k is not None and params.top_k < logits.size(-1):
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p is not None and params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (the first is always kept)
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


Generators = torch.Generator | Sequence[torch.Generator]
"""One generator for the batch, or one per row (a row's draws then never depend on its batch)."""


def choose_tokens(logits: torch.Tensor, params: SamplingParams, generator: Generators) -> torch.Tensor:
    """Processed logits (B, V) on the CPU → token ids (B,): argmax at temperature 0, else a draw."""
    if params.temperature == 0:
        return logits.argmax(-1)
    gens = generator if isinstance(generator, torch.Generator) else list(generator)
    return categorical(logits.softmax(-1), gens).squeeze(1)


class TokenModel(Protocol):
    """What the decoding loop needs of a model: next-token logits, with or without a KV cache."""

    @property
    def block_size(self) -> int: ...

    def next_logits(self, idx: torch.Tensor, cache: Any | None) -> torch.Tensor: ...

    def new_cache(self) -> Any: ...


def generate_ids(
    model: TokenModel,
    prompts: torch.Tensor,
    params: SamplingParams,
    *,
    generator: Generators,
    eos_id: int,
    decode: Callable[[Sequence[int]], str],
    use_cache: bool = True,
) -> list[list[int]]:
    """Continue `prompts` (B, T0) token ids; the new ids of each row (stop strings cut away).

    With the cache, each step feeds only the new token. Once the sequence outgrows the
    model's block size the window slides, positions shift and the cache is rebuilt from the
    last `block_size` tokens each step — exactly what the uncached loop computes. With a
    generator per row, a row that ends leaves the batch (its cache rows too, through the
    model's `select_rows(cache, index)`), so the batch shrinks as its rows end.
    """
    batch = prompts.size(0)
    context = prompts.clone()  # (b, T) on the model's device: the rows still decoding
    vocab_seen: torch.Tensor | None = None
    new_ids: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    live = list(range(batch))  # the original row of each row of `context`
    gens: Generators = generator
    row_gens = [] if isinstance(generator, torch.Generator) else list(generator)
    select_rows = getattr(model, "select_rows", None)  # (cache, index) → the cache of those rows
    can_drop = bool(row_gens) and (not use_cache or select_rows is not None)
    cache = model.new_cache() if use_cache else None
    fed = 0  # positions of `context` the cache holds
    for _ in range(params.max_tokens):
        window = context[:, -model.block_size :]
        if cache is not None and fed and context.size(1) <= model.block_size:
            logits = model.next_logits(context[:, fed:], cache)
        else:
            if cache is not None:
                cache = model.new_cache()
            logits = model.next_logits(window, cache)
        fed = context.size(1)
        logits = logits.float().cpu()  # (b, V)
        if vocab_seen is None:
            vocab_seen = torch.zeros_like(logits, dtype=torch.bool)
            vocab_seen.scatter_(1, prompts.cpu(), True)
        token = choose_tokens(process_logits(logits, vocab_seen, params), params, gens)  # (b,)
        vocab_seen.scatter_(1, token[:, None], True)
        context = torch.cat([context, token[:, None].to(context.device)], dim=1)
        for i, row in enumerate(live):
            if not done[row]:
                done[row] = _append(new_ids[row], int(token[i]), eos_id, params.stop, decode)
        keep = [i for i, row in enumerate(live) if not done[row]]
        if not keep:
            break
        if can_drop and len(keep) < len(live):
            # Rows that ended leave the batch: with a generator per row, the others' draws do not
            # depend on who else is decoding, so a batch waiting on its longest row stops paying
            # for the rows that ended (lines of ad copy end at different lengths).
            index = torch.tensor(keep)
            context = context[index.to(context.device)]
            vocab_seen = vocab_seen[index]
            if cache is not None and select_rows is not None:
                cache = select_rows(cache, index.to(context.device))
            gens = [row_gens[i] for i in keep]
            row_gens = gens
            live = [live[i] for i in keep]
    return new_ids


def _append(
    ids: list[int], token: int, eos_id: int, stop: Sequence[str], decode: Callable[[Sequence[int]], str]
) -> bool:
    """Add `token` to a row's output; True when the row has ended."""
    if token == eos_id:
        return True
    ids.append(token)
    return bool(stop) and any(s in decode(ids) for s in stop)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to the first stop string (all of it when none occurs)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]

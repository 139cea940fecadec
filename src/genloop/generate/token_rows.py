"""Continuous batching for token models: rows that join and leave between decoding steps.

A row is one request (prompt ids, sampling parameters, its own seeded CPU generator and
KV cache). `decode_step(model, rows)` advances every row by one token:

    new row or window slid     logits of that row alone: model.next_logits(window, fresh cache)
    cached row (gpt)           one batched forward for all of them, one new token each
    every row                  process_logits + draw, grouped by identical SamplingParams,
                               each row drawing from its own generator

so a caller (the serving worker) can admit a request between two steps and answer one
as soon as it ends, instead of waiting for a whole batch.

Same seed, same text as alone: row r's tokens are bit-for-bit what
`model.generate_ids(prompt_r, seed=seed_r, **params_r)` gives, whatever else is in the
batch. Why that holds, step by step, against `models/sampling.generate_ids`:

* prefill and every slid window run exactly the single-row code (`next_logits`, B = 1);
* the batched forward feeds each row's new token through the same modules, but every
  matrix product is a batch of one-row products, `bmm((B, 1, C), (B, C, O))`: torch's
  CPU BLAS computes a one-row product as it does for a lone row, whereas one (B, C) × (C, O)
  product takes another kernel whose sums differ in the last bit (measured: 2e-7) and
  would, rarely, flip a draw. Attention runs per row over that row's own cache;
  embeddings, LayerNorm and GELU are per row anyway;
* the logits processors and `softmax` work row by row, and `torch.multinomial` on a row
  with its own generator is what the single-row loop calls.

`tests/generate/test_token_rows.py` checks the batched logits bit for bit against the
model's own one-row step (a torch whose batched one-row product differs from the lone one
fails it), and `tests/server/test_textgen.py` checks texts end to end (concurrent = alone).
On a device other than the CPU the batched products are not promised to be bit-identical.
The price of exactness: a batch of one-row products costs ≈ 2× one (B, C) product here
(B = 8, 128 → 512: 93 vs 43 µs on the 2-vCPU build machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.models.sampling import SamplingParams, choose_tokens, process_logits


@dataclass(eq=False)
class TokenRow:
    """One sequence being decoded; `new_ids` grows by one token per step until `done`."""

    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator
    eos_id: int
    decode: Callable[[Sequence[int]], str]
    new_ids: list[int] = field(default_factory=list)
    done: bool = False
    context: list[int] = field(init=False)
    cache: Any = None
    """The model's KV cache for this row alone (gpt: per layer [k, v], each (1, nh, T, hs))."""
    fed: int = 0
    """Positions of `context` the cache holds."""
    seen: torch.Tensor | None = None
    """(V,) bool: tokens in the context, for the repetition penalty."""

    def __post_init__(self) -> None:
        self.context = list(self.prompt_ids)


def new_row(model: Any, prompt_ids: Sequence[int], params: SamplingParams, seed: int) -> TokenRow:
    """A row of `model` (a gpt-like model with a tokenizer) seeded like `generate_ids(seed=seed)`."""
    tokenizer = model.tokenizer
    return TokenRow(
        prompt_ids=list(prompt_ids),
        params=params,
        generator=torch.Generator().manual_seed(seed),
        eos_id=tokenizer.eos_id,
        decode=tokenizer.decode,
    )


@torch.inference_mode()
def decode_step(model: Any, rows: Sequence[TokenRow]) -> list[TokenRow]:
    """Advance every unfinished row of `model` by one token; the rows that ended in this step.

    Puts the model in eval mode (dropout off, as generate_ids does) and leaves it there.
    """
    live = [row for row in rows if not row.done]
    if not live:
        return []
    model.eval()
    device = model.wte.weight.device if hasattr(model, "wte") else torch.device("cpu")
    block_size = model.block_size
    # generate_ids feeds only the new token while the context fits the block; after that
    # the window slides and the whole window is recomputed each step
    fits = {id(r): bool(r.fed) and r.cache is not None and len(r.context) <= block_size for r in live}
    cached = [r for r in live if fits[id(r)]]
    alone = [r for r in live if not fits[id(r)]]
    logits: dict[int, torch.Tensor] = {}
    for row in alone:  # a new row, or a window that slid: the single-row code, as in generate_ids
        row.cache = model.new_cache()
        window = torch.tensor([row.context[-block_size:]], dtype=torch.long, device=device)
        logits[id(row)] = model.next_logits(window, row.cache).float().cpu()  # (1, V)
        row.fed = len(row.context)
    if cached:
        if _has_gpt_layout(model):
            batched = _gpt_next_logits(model, cached, device).float().cpu()  # (B, V)
            for i, row in enumerate(cached):
                logits[id(row)] = batched[i : i + 1]
        else:  # another token model: its own cached step, one row at a time
            for row in cached:
                new = torch.tensor([row.context[row.fed :]], dtype=torch.long, device=device)
                logits[id(row)] = model.next_logits(new, row.cache).float().cpu()
        for row in cached:
            row.fed = len(row.context)
    _sample(live, logits)
    return [row for row in live if row.done]


def _sample(rows: list[TokenRow], logits: dict[int, torch.Tensor]) -> None:
    """Process and draw per group of identical parameters; append; mark ended rows."""
    groups: dict[SamplingParams, list[TokenRow]] = {}
    for row in rows:
        groups.setdefault(row.params, []).append(row)
    for params, group in groups.items():
        stacked = torch.cat([logits[id(r)] for r in group])  # (b, V)
        seen = torch.stack([_seen(r, stacked.size(-1)) for r in group])  # (b, V)
        tokens = choose_tokens(process_logits(stacked, seen, params), params, [r.generator for r in group])
        for row, token in zip(group, tokens.tolist(), strict=True):
            _seen(row, stacked.size(-1))[token] = True
            row.context.append(token)
            row.done = _append(row, token)


def _seen(row: TokenRow, vocab: int) -> torch.Tensor:
    """The row's (V,) mask of context tokens, started from its prompt as generate_ids does."""
    if row.seen is None:
        row.seen = torch.zeros(vocab, dtype=torch.bool)
        row.seen[torch.tensor(row.prompt_ids, dtype=torch.long)] = True
    return row.seen


def _append(row: TokenRow, token: int) -> bool:
    """Add `token` to the row's output; True when the row has ended (as `sampling._append`)."""
    if token == row.eos_id:
        return True
    row.new_ids.append(token)
    stop = row.params.stop
    if stop and any(s in row.decode(row.new_ids) for s in stop):
        return True
    return len(row.new_ids) >= row.params.max_tokens


def _has_gpt_layout(model: Any) -> bool:
    from genloop.models.gpt import GPT

    return isinstance(model, GPT)


def _rowwise_linear(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """x (B, 1, C) → (B, 1, O): B one-row products, each bit-identical to `linear(x[b:b+1])`."""
    batch = x.size(0)
    weight_t = linear.weight.t().expand(batch, -1, -1)  # (B, C, O), a view
    if linear.bias is None:
        return torch.bmm(x, weight_t)
    return torch.baddbmm(linear.bias.expand(batch, 1, -1), x, weight_t)


def _gpt_next_logits(model: Any, rows: list[TokenRow], device: torch.device) -> torch.Tensor:
    """Logits (B, V) after feeding each row's one new token; the rows' caches grow by one.

    The modules of `GPT.forward` in its order (pre-LN blocks, tied output projection),
    with one position per row (rows hold prompts of different lengths):

        x = wte[token_b] + wpe[fed_b]                              (B, 1, C)
        x = x + c_proj(attn_b(q_b, [cache_b; k_b], [cache_b; v_b]))  attention per row
        x = x + mlp(ln_2(x))
        logits = ln_f(x) @ wteᵀ                                     (B, 1, V)
    """
    tokens = torch.tensor([[r.context[-1]] for r in rows], dtype=torch.long, device=device)  # (B, 1)
    positions = torch.tensor([[r.fed] for r in rows], dtype=torch.long, device=device)  # (B, 1)
    x = model.wte(tokens) + model.wpe(positions)  # (B, 1, C); dropout layers are off (eval): skipped
    batch, _, width = x.shape
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        heads = attn.n_head
        q, k, v = _rowwise_linear(block.ln_1(x), attn.c_attn).split(width, dim=2)
        q, k, v = (
            t.view(batch, 1, heads, width // heads).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, 1, hs)
        outputs = []
        for b, row in enumerate(rows):
            cache = row.cache[layer]
            keys = torch.cat([cache[0], k[b : b + 1]], dim=2)  # (1, nh, T+1, hs)
            values = torch.cat([cache[1], v[b : b + 1]], dim=2)
            cache[:] = [keys, values]
            outputs.append(F.scaled_dot_product_attention(q[b : b + 1], keys, values, is_causal=False))
        y = torch.cat(outputs).transpose(1, 2).contiguous().view(batch, 1, width)
        x = x + _rowwise_linear(y, attn.c_proj)
        up, act, down, _ = block.mlp  # Linear, GELU, Linear, Dropout
        x = x + _rowwise_linear(act(_rowwise_linear(block.ln_2(x), up)), down)
    hidden = model.ln_f(x)  # (B, 1, C)
    return torch.bmm(hidden, model.wte.weight.t().expand(batch, -1, -1))[:, -1, :]  # (B, V)


def generate_rows(
    model: Any, prompts: Sequence[Sequence[int]], params: Sequence[SamplingParams], seeds: Sequence[int]
) -> list[list[int]]:
    """Decode all prompts together to the end; the new ids of each (for tests and benchmarks)."""
    rows = [new_row(model, p, sp, s) for p, sp, s in zip(prompts, params, seeds, strict=True)]
    while not all(r.done for r in rows):
        decode_step(model, rows)
    return [r.new_ids for r in rows]

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
* the batched forward (`genloop.generate.gpt_rows`, why there) computes for each row what
  the model's own one-token step computes: one-row matrix products, attention over the
  row's block-sized cache buffer;
* the logits processors and `softmax` work row by row; each row's draw is the one
  `torch.multinomial` makes from the row's generator (`models/seeds.categorical`: the same exponential
  noise from the same generator, the division and argmax done once for the batch).

`tests/generate/test_token_rows.py` checks the batched logits bit for bit against the
model's own one-row step and the draws against torch.multinomial, and
`tests/server/test_textgen.py` checks texts end to end (concurrent = alone).

Cost (cpu preset, one torch thread, 50 new tokens, a /tmp micro-benchmark on the busy
2-vCPU build machine, old and new code side by side): a decode step of B = 1, 4, 8 rows
went from 1.01, 1.76, 2.36 ms to 0.65, 1.07, 1.52 ms — no `torch.cat` of every cache per
step, one attention call per layer instead of one per row, the draws in one pass, and no
`model.eval()` walk of every module each step. The one-row products stay the floor
(about half of a step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

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
    """The model's KV cache for this row alone (gpt: a `KVCache` of one row, (1, 2, nh, S, hs)
    per layer, whose buffers are views of the rows' stacked `_GptBatch` once batched)."""
    fed: int = 0
    """Positions of `context` the cache holds."""
    seen: torch.Tensor | None = None
    """(V,) bool: tokens in the context, for the repetition penalty (kept only when it is on)."""
    batch: Any = None
    """The `_GptBatch` whose buffers this row's cache is a slice of (None: its own buffers)."""

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
    if model.training:  # not model.eval() every step: it walks every submodule (≈ 0.3 ms)
        model.eval()
    device = model.wte.weight.device if hasattr(model, "wte") else torch.device("cpu")
    block_size = model.block_size
    # generate_ids feeds only the new token while the context fits the block; after that
    # the window slides and the whole window is recomputed each step
    fits = [bool(r.fed) and r.cache is not None and len(r.context) <= block_size for r in live]
    cached = [r for r, fit in zip(live, fits, strict=True) if fit]
    alone = [r for r, fit in zip(live, fits, strict=True) if not fit]
    logits: dict[int, torch.Tensor] = {}
    for row in alone:  # a new row, or a window that slid: the single-row code, as in generate_ids
        row.cache, row.batch = model.new_cache(), None
        window = torch.tensor([row.context[-block_size:]], dtype=torch.long, device=device)
        logits[id(row)] = model.next_logits(window, row.cache).float().cpu()  # (1, V)
        row.fed = len(row.context)
    batched: torch.Tensor | None = None
    if cached:
        if _has_gpt_layout(model):
            batched = _gpt_next_logits(model, cached, device).float().cpu()  # (B, V)
        else:  # another token model: its own cached step, one row at a time
            for row in cached:
                new = torch.tensor([row.context[row.fed :]], dtype=torch.long, device=device)
                logits[id(row)] = model.next_logits(new, row.cache).float().cpu()
        for row in cached:
            row.fed = len(row.context)
    if batched is not None and not alone:  # the usual step: every row's logits in one tensor
        all_logits = batched
    else:
        if batched is not None:
            logits.update((id(row), batched[i : i + 1]) for i, row in enumerate(cached))
        all_logits = torch.cat([logits[id(row)] for row in live])
    _sample(live, all_logits)
    return [row for row in live if row.done]


def _sample(rows: list[TokenRow], logits: torch.Tensor) -> None:
    """Process and draw per group of identical parameters; append; mark ended rows.

    `logits` (B, V): row i's logits are `logits[i]`."""
    groups: dict[SamplingParams, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.params, []).append(i)
    vocab = logits.size(-1)
    for params, members in groups.items():
        group = [rows[i] for i in members]
        group_logits = logits if len(members) == len(rows) else logits[torch.tensor(members)]  # (b, V)
        if params.repetition_penalty != 1.0:
            seen = torch.stack([_seen(r, vocab) for r in group])  # (b, V)
        else:  # process_logits reads `seen` only for the penalty
            seen = torch.zeros(len(group), vocab, dtype=torch.bool)
        processed = process_logits(group_logits, seen, params)
        tokens = choose_tokens(processed, params, [r.generator for r in group])
        for row, token in zip(group, tokens.tolist(), strict=True):
            if params.repetition_penalty != 1.0:
                _seen(row, vocab)[token] = True
            row.context.append(token)
            row.done = _append(row, token)
            if row.done:
                row.batch = None  # the stacked caches (and the rows they list) need not outlive the rows


def _seen(row: TokenRow, vocab: int) -> torch.Tensor:
    """The row's (V,) mask of context tokens, started from its prompt as generate_ids does."""
    if row.seen is None:
        row.seen = torch.zeros(vocab, dtype=torch.bool)
        row.seen[torch.tensor(row.prompt_ids, dtype=torch.long)] = True
        for token in row.new_ids:  # tokens drawn before the mask was first needed
            row.seen[token] = True
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


def _gpt_next_logits(model: Any, rows: list[TokenRow], device: torch.device) -> torch.Tensor:
    """Logits (B, V) after feeding each row's new token in one batched pass; the caches grow by one."""
    from genloop.generate.gpt_rows import gpt_rows

    stacked = gpt_rows(model, rows, rows[0].batch)
    for row in rows:
        row.batch = stacked
    return stacked.next_logits([r.context[-1] for r in rows], [r.fed for r in rows])


def generate_rows(
    model: Any, prompts: Sequence[Sequence[int]], params: Sequence[SamplingParams], seeds: Sequence[int]
) -> list[list[int]]:
    """Decode all prompts together to the end; the new ids of each (for tests and benchmarks)."""
    rows = [new_row(model, p, sp, s) for p, sp, s in zip(prompts, params, seeds, strict=True)]
    while not all(r.done for r in rows):
        decode_step(model, rows)
    return [r.new_ids for r in rows]

"""Continuous batching of gpt rows (`genloop.generate.token_rows`): a tiny real model, no mocks.

What a caller relies on: a row's tokens do not depend on the rows decoded beside it,
joining or leaving between steps; and the batched forward's logits are bit-identical to
the model's own one-row step (a last-bit difference could flip a draw, rarely, and so
fail only on some seeds: the logits test catches it on every run).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch

from genloop.generate.token_rows import _gpt_next_logits, decode_step, generate_rows, new_row
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.sampling import SamplingParams, choose_tokens
from genloop.models.tokenizers import CharTokenizer


@pytest.fixture(scope="module")
def model() -> GPT:
    tokenizer = CharTokenizer.train(["hello world, the quick brown fox jumps over the lazy dog."])
    torch.manual_seed(0)
    config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=tokenizer.vocab_size)
    return GPT.build(config, tokenizer).eval()


def _ids(model: GPT, prompt: str) -> list[int]:
    return [model.tokenizer.eos_id, *model.tokenizer.encode(prompt)]


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """torch's intra-op threads: one (the serving workers' setting: one attention call for
    the batch) or two (one attention call per row)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_batched_logits_are_bit_identical_to_the_one_row_step(model: GPT, threads: int) -> None:
    params = SamplingParams(temperature=1.0, max_tokens=8)
    rows = [
        new_row(model, _ids(model, p), params, seed)
        for seed, p in enumerate(["he", "the quick", "", "fox j", "lazy dog"])
    ]
    for step in range(4):  # prefill alone, then batched steps; a row joins at the third
        decode_step(model, rows[:4] if step < 2 else rows)
    alone = []
    for row in rows:  # the model's own cached step on a copy of the row's cache
        cache = copy.deepcopy(row.cache)
        alone.append(model.next_logits(torch.tensor([[row.context[-1]]]), cache))
    batched = _gpt_next_logits(model, rows, torch.device("cpu"))
    for b in range(len(rows)):
        assert torch.equal(batched[b : b + 1], alone[b])


def test_one_pass_draws_are_torch_multinomials_draws() -> None:
    """The batch's draws (argmax of p / Exp(1) noise, filled row by row) are exactly
    `torch.multinomial(p_b, 1, generator=g_b)`, which the single-row loop calls."""
    torch.manual_seed(0)
    logits = torch.randn(64, 70) * 3
    logits[::3, 10:] = float("-inf")  # rows with most tokens filtered out, as top-k does
    for temperature in (0.3, 1.0):
        params = SamplingParams(temperature=temperature)
        for seed in range(20):
            gens = [torch.Generator().manual_seed(seed * 1000 + b) for b in range(64)]
            refs = [torch.Generator().manual_seed(seed * 1000 + b) for b in range(64)]
            tokens = choose_tokens(logits / temperature, params, gens)
            probs = (logits / temperature).softmax(-1)
            expected = [int(torch.multinomial(probs[b : b + 1], 1, generator=refs[b])) for b in range(64)]
            assert tokens.tolist() == expected
            assert all(g.get_state().equal(r.get_state()) for g, r in zip(gens, refs, strict=True))
    with pytest.raises(RuntimeError, match="probability tensor contains"):
        choose_tokens(torch.full((2, 5), float("nan")), SamplingParams(), [torch.Generator()] * 2)


def test_rows_joining_and_leaving_keep_their_texts(model: GPT) -> None:
    cases = [
        ("hello", SamplingParams(temperature=0.9, max_tokens=30), 1),  # past block_size 16: the window slides
        ("", SamplingParams(temperature=0.0, max_tokens=5), 2),
        ("the quick brown", SamplingParams(temperature=1.4, top_k=4, max_tokens=12), 3),
        ("dog", SamplingParams(temperature=0.8, top_p=0.6, repetition_penalty=1.3, max_tokens=20), 4),
        ("lazy", SamplingParams(temperature=1.0, max_tokens=9, stop=("o",)), 5),
    ]
    alone = [model.generate_ids(torch.tensor([_ids(model, p)]), seed=s, **vars(sp))[0] for p, sp, s in cases]
    rows = [new_row(model, _ids(model, p), sp, s) for p, sp, s in cases]
    decoding = rows[:2]
    for step in range(100):  # a row joins every other step; ended rows leave
        if step % 2 == 0 and step // 2 + 2 <= len(rows):
            decoding += rows[step // 2 + 2 : step // 2 + 3]
        decode_step(model, decoding)
        decoding = [r for r in decoding if not r.done]
    assert all(r.done for r in rows)
    assert [r.new_ids for r in rows] == alone
    assert (
        generate_rows(
            model, [_ids(model, p) for p, _, _ in cases], [c[1] for c in cases], [c[2] for c in cases]
        )
        == alone
    )

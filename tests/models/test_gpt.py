"""The GPT family on a tiny char model trained for a few seconds on real fortunes: config checks,
KV-cache decoding, sampling parameters, and save → load."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from genloop.errors import GenloopError
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.registry import get_model_family
from genloop.models.sampling import SamplingParams, process_logits
from genloop.models.tokenizers import CharTokenizer
from genloop.train.recipes.gpt import batch_at
from genloop.train.text import encode_stream
from support.text import fortune_texts

CONFIG = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16)


@pytest.fixture(scope="module")
def trained() -> Iterator[GPT]:
    """A char GPT after 300 AdamW steps on 4 KB of fortunes (about 3 s on one core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: a second thread only waits (see train/device.py)
    texts = fortune_texts(4000)
    tokenizer = CharTokenizer.train(texts)
    stream = encode_stream(texts, tokenizer)
    torch.manual_seed(0)
    model = GPT.build(GPTConfig(**{**CONFIG.__dict__, "vocab_size": tokenizer.vocab_size}), tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(300):
        x, y = batch_at(stream, step, seed=0, batch_size=32, block_size=CONFIG.block_size)
        loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    yield model.eval()
    torch.set_num_threads(threads)


def test_registered_as_the_gpt_family() -> None:
    assert get_model_family("gpt") is GPT


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_embd": 30, "n_head": 4}, r"n_embd \(30\) must be divisible by n_head \(4\)"),
        ({"block_size": 1}, "block_size must be ≥ 2"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"tokenizer": "words"}, "tokenizer must be one of char, bpe"),
        ({"tokenizer": "bpe", "vocab_size": 100}, "vocab_size must be ≥ 257"),
        ({"vocab_size": 500}, 'vocab_size applies to tokenizer = "bpe" only'),
        ({"layers": 4}, r"unknown \[train.model\] option\(s\) \['layers'\]"),
    ],
)
def test_bad_options_are_refused_with_the_reason(options: dict[str, object], message: str) -> None:
    with pytest.raises(GenloopError, match=message):
        GPTConfig.from_options(options)


def test_an_untrained_model_predicts_uniformly_and_ties_its_output_to_the_embedding() -> None:
    torch.manual_seed(0)
    model = GPT.build(GPTConfig(**{**CONFIG.__dict__, "vocab_size": 50}))
    idx, targets = torch.randint(50, (2, 3, 16))
    assert model(idx).shape == (3, 16, 50)
    assert model(idx, targets).item() == pytest.approx(math.log(50), abs=0.1)  # ≈ ln V nats
    assert "lm_head.weight" not in model.state_dict()  # logits = h @ wteᵀ
    with pytest.raises(GenloopError, match="exceed block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_cached_decoding_gives_the_tokens_of_uncached_decoding(trained: GPT) -> None:
    prompt = torch.tensor([trained.tokenizer.encode("A tall")])
    # 40 new tokens: past the 16-token block, where the window slides and the cache is rebuilt
    greedy = trained.generate_ids(prompt, seed=0, max_tokens=40, temperature=0.0)
    assert greedy == trained.generate_ids(prompt, seed=0, max_tokens=40, temperature=0.0, use_cache=False)
    assert len(greedy[0]) == 40  # greedy loops ("te te te"), so it outgrows the block
    sampled = {"temperature": 1.0, "top_k": 10, "repetition_penalty": 1.3, "max_tokens": 40}
    for seed in range(4):
        cached = trained.generate_ids(prompt, seed=seed, **sampled)
        assert cached == trained.generate_ids(prompt, seed=seed, use_cache=False, **sampled)
    # and the cache reproduces the full forward pass position by position
    ids = torch.tensor([trained.tokenizer.encode("A visit to a")])  # 12 ≤ block_size
    with torch.no_grad():
        full = trained(ids)[0]  # (T, V)
        cache = trained.new_cache()
        steps = [trained.next_logits(ids[:, :4], cache)[0]]
        steps += [trained.next_logits(ids[:, t : t + 1], cache)[0] for t in range(4, ids.size(1))]
    torch.testing.assert_close(torch.stack(steps), full[3:], rtol=1e-4, atol=1e-5)


def test_same_seed_same_text_and_the_model_learned_english(trained: GPT) -> None:
    first = trained.generate_text(["A tall, dark"], seed=7, max_tokens=60)
    assert first == trained.generate_text(["A tall, dark"], seed=7, max_tokens=60)
    assert first != trained.generate_text(["A tall, dark"], seed=8, max_tokens=60)
    samples = trained.sample(4, seed=1, max_tokens=60)
    assert len(samples) == 4 and len(set(samples)) > 1  # the family protocol: n unprompted texts
    letters = sum(c.isalpha() or c.isspace() for text in samples for c in text)
    assert letters / max(1, sum(len(t) for t in samples)) > 0.8  # not character soup


def test_top_k_one_is_greedy_whatever_the_seed(trained: GPT) -> None:
    greedy = trained.generate_text(["You will"], seed=0, temperature=0.0, max_tokens=40)
    for seed in range(3):
        assert trained.generate_text(["You will"], seed=seed, top_k=1, max_tokens=40) == greedy


def test_stop_strings_cut_the_output(trained: GPT) -> None:
    full = trained.generate_text(["A "], seed=0, temperature=0.0, max_tokens=60)[0]
    stop = full[10:12]  # a string the greedy text is known to contain
    cut = trained.generate_text(["A "], seed=0, temperature=0.0, max_tokens=60, stop=[stop])[0]
    assert cut == full[: full.find(stop)] and stop not in cut
    assert trained.generate_text(["A "], seed=0, temperature=0.0, max_tokens=60, stop="zzz") == [full]


def test_repetition_penalty_reduces_repeats(trained: GPT) -> None:
    def repeated_share(penalty: float) -> float:
        ids = trained.generate_ids(
            torch.tensor([[trained.tokenizer.eos_id]]),
            seed=0,
            temperature=0.0,
            max_tokens=80,
            repetition_penalty=penalty,
        )[0]
        trigrams = [tuple(ids[i : i + 3]) for i in range(len(ids) - 2)]
        return 1 - len(set(trigrams)) / len(trigrams)

    assert repeated_share(1.0) > 0.5  # greedy decoding of a small model loops: "te te te te"
    # a clear cut, not an exact one: the share depends on the CPU's float kernels (0.91 → 0.49 on an
    # AVX2 machine, below half on an AVX-512 one)
    assert repeated_share(2.0) < 0.75 * repeated_share(1.0)


def test_logit_processing_by_hand() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    seen = torch.tensor([[True, False, False, True]])
    penalised = process_logits(logits, seen, SamplingParams(repetition_penalty=2.0))
    assert penalised.tolist() == [[1.0, 1.0, 0.5, -2.0]]  # positive ÷ p, negative × p
    probs = logits.softmax(-1)[0]  # ≈ [0.61, 0.22, 0.14, 0.03]
    nucleus = process_logits(logits, seen, SamplingParams(top_p=0.7))
    assert torch.isfinite(nucleus).tolist() == [[True, True, False, False]]  # 0.61 < 0.7 ≤ 0.83
    assert probs[:2].sum() > 0.7
    top2 = process_logits(logits, seen, SamplingParams(top_k=2, temperature=0.5))
    assert top2[0, :2].tolist() == [4.0, 2.0] and torch.isinf(top2[0, 2:]).all()


def test_bad_sampling_parameters_are_refused(trained: GPT) -> None:
    with pytest.raises(GenloopError, match=r"unknown sampling parameter\(s\) \['beam'\]"):
        trained.generate_text(["x"], beam=4)
    with pytest.raises(GenloopError, match="top_p must be in"):
        trained.sample(1, seed=0, top_p=0.0)
    with pytest.raises(GenloopError, match="temperature must be ≥ 0"):
        trained.sample(1, seed=0, temperature=-1)


def test_save_then_load_generates_the_same_text(trained: GPT, tmp_path: Path) -> None:
    trained.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors", "char_vocab.json"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["family"] == "gpt" and config["vocab_size"] == trained.tokenizer.vocab_size
    loaded = GPT.load(tmp_path)
    for prompt_seed in range(2):
        assert loaded.generate_text(
            ["Advancement"], seed=prompt_seed, max_tokens=50
        ) == trained.generate_text(["Advancement"], seed=prompt_seed, max_tokens=50)
    # a directory whose tokenizer file belongs to another model is refused, not silently used
    CharTokenizer.train(["something else"]).save(tmp_path)
    with pytest.raises(GenloopError, match="not the one this model was trained with"):
        GPT.load(tmp_path)

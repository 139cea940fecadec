"""SFT, DPO and KTO move tiny real models toward a planted preference: a char GPT pre-trained on
fortunes (completions ending in "!" preferred to the same words ending in "."), the music
Transformer on Bach chorales (real openings preferred to scrambled ones), and a tiny Hugging
Face causal LM with LoRA, through genloop's own losses and through TRL."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from genloop.errors import GenloopError
from genloop.improve.text_recipes import (
    GPTScorer,
    ImproveOptions,
    Liked,
    MusicScorer,
    PreferencePair,
    Thumb,
    dpo,
    kto,
    pair_margins,
    sft,
)
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.tokenizers import CharTokenizer
from support.text import fortune_texts

OPTIONS = ImproveOptions(steps=24, learning_rate=1e-3, beta=0.1, batch_size=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny ops: a second thread only waits (see train/device.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return fortune_texts(6000)


@pytest.fixture(scope="module")
def pretrained(corpus: list[str]) -> GPT:
    """A 1-layer char GPT after 120 AdamW steps on 6 KB of fortunes."""
    tokenizer = CharTokenizer.train([*corpus, "!."])
    torch.manual_seed(0)
    model = GPT.build(
        GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=tokenizer.vocab_size), tokenizer
    )
    stream = torch.tensor([t for text in corpus for t in (tokenizer.eos_id, *tokenizer.encode(text))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(120):
        starts = torch.randint(len(stream) - 33, (16,), generator=generator).tolist()
        windows = torch.stack([stream[s : s + 33] for s in starts])
        loss = model(windows[:, :-1], windows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def _lines(corpus: list[str]) -> list[str]:
    return [line.strip() for text in corpus for line in text.splitlines() if len(line.split()) >= 6]


def _pairs(lines: list[str]) -> list[PreferencePair]:
    """Prompt: a line's first two words; the next four words ending in "!" preferred to "."."""
    pairs = []
    for line in lines:
        words = line.split()
        body = " ".join(words[2:6])
        pairs.append(PreferencePair(" ".join(words[:2]) + " ", body + "!", body + "."))
    return pairs


def _bang_rate(model: GPT, prompts: list[str]) -> float:
    """Mean number of "!" in 32 fixed-seed samples of 24 characters."""
    conditions = [prompts[i % len(prompts)] for i in range(32)]
    samples = model.sample(32, conditions, seed=0, seeds=list(range(32)), max_tokens=24)
    return sum(s.count("!") for s in samples) / len(samples)


def test_dpo_raises_the_planted_preference(pretrained: GPT, corpus: list[str]) -> None:
    lines = _lines(corpus)
    train, held_out = _pairs(lines[:24]), _pairs(lines[24:36])
    model = copy.deepcopy(pretrained)
    prompts = [p.prompt for p in held_out]
    before, bangs_before = pair_margins(GPTScorer(model), held_out), _bang_rate(model, prompts)
    result = dpo(GPTScorer(model, original=corpus), train, OPTIONS)
    after, bangs_after = pair_margins(GPTScorer(model), held_out), _bang_rate(model, prompts)
    assert result.model is model and len(result.stats.losses) == OPTIONS.steps
    assert result.stats.losses[0] == pytest.approx(0.693, abs=1e-3)  # π = π_ref at step 0: −log σ(0)
    assert result.stats.losses[-1] < 0.6 and len(result.stats.original_losses) == OPTIONS.steps
    assert result.stats.after["margin"] > result.stats.before["margin"] + 3
    assert after["accuracy"] >= 0.9 > before["accuracy"]  # generalises to held-out prompts
    assert bangs_after > bangs_before  # and shows in what the model samples


def test_kto_raises_the_planted_preference_from_unpaired_thumbs(pretrained: GPT, corpus: list[str]) -> None:
    lines = _lines(corpus)
    pairs = _pairs(lines[:24])
    thumbs = [Thumb(p.prompt, p.chosen, True) for p in pairs[:12]]
    thumbs += [Thumb(p.prompt, p.rejected, False) for p in pairs[12:]]  # no prompt has both thumbs
    held_out = _pairs(lines[24:36])
    model = copy.deepcopy(pretrained)
    before = pair_margins(GPTScorer(model), held_out)
    result = kto(GPTScorer(model, original=corpus), thumbs, OPTIONS)
    after = pair_margins(GPTScorer(model), held_out)
    assert result.stats.losses[0] == pytest.approx(0.5, abs=1e-3)  # 1 − σ(0) at step 0
    gap_before = (
        result.stats.before["desirable_logp_per_token"] - result.stats.before["undesirable_logp_per_token"]
    )
    gap_after = (
        result.stats.after["desirable_logp_per_token"] - result.stats.after["undesirable_logp_per_token"]
    )
    assert gap_after > gap_before + 0.3
    assert after["margin"] > before["margin"] + 1.0


def test_sft_on_edited_texts_raises_their_likelihood(pretrained: GPT, corpus: list[str]) -> None:
    edited = [Liked("", line, weight=2.0) for line in _lines(corpus)[40:48]]
    model = copy.deepcopy(pretrained)
    result = sft(GPTScorer(model, original=corpus), edited, ImproveOptions(steps=16, learning_rate=1e-3))
    assert result.stats.after["nll_per_token"] < result.stats.before["nll_per_token"] - 0.2
    assert max(result.stats.original_losses) < 3.0  # the original data's loss holds (it starts ≈ 2.5)


def test_bad_inputs_are_named(pretrained: GPT) -> None:
    with pytest.raises(GenloopError, match="at least one"):
        dpo(GPTScorer(pretrained), [], OPTIONS)
    with pytest.raises(GenloopError, match="not bytes"):
        sft(GPTScorer(pretrained), [Liked("", b"MThd")], OPTIONS)
    with pytest.raises(GenloopError, match="beta"):
        ImproveOptions(beta=0.0)


def test_music_dpo_on_event_tokens(tmp_path: Path) -> None:
    pytest.importorskip("miditok")
    from genloop.models.music import MusicConfig, MusicTransformer
    from support.chorales import chorale_records

    records = chorale_records(4)
    torch.manual_seed(0)
    model = MusicTransformer(
        MusicConfig(classes=["major", "minor"], n_layer=1, n_head=2, n_embd=32, block_size=48, dropout=0.0)
    )
    generator = torch.Generator().manual_seed(0)
    pairs = []
    for record in records:
        events = model.tokenizer.encode(record.payload)[:40]
        scrambled = [
            events[0],
            *(events[1:][i] for i in torch.randperm(len(events) - 1, generator=generator).tolist()),
        ]
        pairs.append(PreferencePair("major", events, scrambled))  # a real opening over its events shuffled
    original = [("major", record.payload) for record in records]
    result = dpo(
        MusicScorer(model, original=original),
        pairs[:4],
        ImproveOptions(steps=12, learning_rate=2e-3, batch_size=4),
    )
    assert result.stats.losses[0] == pytest.approx(0.693, abs=1e-3)
    assert result.stats.after["margin"] > result.stats.before["margin"] + 2
    assert result.stats.original_losses and all(loss > 0 for loss in result.stats.original_losses)
    with pytest.raises(GenloopError, match="classes"):
        MusicScorer(model).encode("jazz", pairs[0].chosen)


def test_hf_causal_lm_dpo_with_own_losses_and_with_trl(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from genloop.improve.text_recipes import HFScorer, dpo_trl, kto_trl
    from genloop.models.hf_causal_lm import HFCausalLM
    from support.tiny_causal_lm import shakespeare_lines, tiny_causal_lm

    folder = tiny_causal_lm(tmp_path / "base", architecture="gpt2")
    model = HFCausalLM(base_model=str(folder), lora_r=4, lora_dropout=0.0)
    lines = shakespeare_lines(8)
    pairs = _pairs(lines)
    before = {n: p.detach().clone() for n, p in model.adapter_parameters().items()}
    result = dpo(
        HFScorer(model, original=lines), pairs, ImproveOptions(steps=4, learning_rate=2e-2, batch_size=8)
    )
    assert result.stats.losses[0] == pytest.approx(0.693, abs=1e-3)
    assert result.stats.after["margin"] > result.stats.before["margin"]
    assert all(p.requires_grad for p in model.adapter_parameters().values())
    assert not any(
        p.requires_grad for n, p in model.peft.named_parameters() if "lora_" not in n
    )  # base frozen

    pytest.importorskip("trl")
    tuned = {n: p.detach().clone() for n, p in model.adapter_parameters().items()}
    options = ImproveOptions(steps=1, learning_rate=1e-2, batch_size=4)
    trl_result = dpo_trl(model, pairs, tmp_path / "trl-dpo", options)
    assert trl_result.stats.losses and trl_result.stats.losses[0] == pytest.approx(0.693, abs=1e-3)
    moved = [n for n, p in model.adapter_parameters().items() if not torch.equal(p.detach(), tuned[n])]
    assert moved and any(not torch.equal(tuned[n], before[n]) for n in tuned)
    thumbs = [Thumb(p.prompt, p.chosen, True) for p in pairs[:4]] + [
        Thumb(p.prompt, p.rejected, False) for p in pairs[4:]
    ]
    kto_result = kto_trl(model, thumbs, tmp_path / "trl-kto", options)
    assert len(kto_result.stats.losses) == 1 and kto_result.stats.method == "kto-trl"
    assert set(model.adapter_parameters()) == set(before)  # TRL's reference adapter is gone again
    model.save(tmp_path / "saved")
    assert set(HFCausalLM.load(tmp_path / "saved").adapter_parameters()) == set(before)

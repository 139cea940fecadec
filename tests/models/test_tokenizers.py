"""Char and byte-level BPE tokenizers on real English and Chinese text: round trips, files, fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genloop.errors import GenloopError
from genloop.models.tokenizers import (
    BPE_FILE,
    CHAR_FILE,
    BPETokenizer,
    CharTokenizer,
    load_tokenizer,
    train_tokenizer,
)
from support.text import fortune_texts

MIXED = "Drain the moat. 床前明月光，疑是地上霜。"


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [*fortune_texts(3000), *fortune_texts(600, name="tang300"), MIXED]


def test_char_tokenizer_round_trips_chinese_and_english_and_maps_unseen_chars_to_unk(
    corpus: list[str], tmp_path: Path
) -> None:
    tokenizer = CharTokenizer.train(corpus)
    assert tokenizer.decode(tokenizer.encode(MIXED)) == MIXED
    assert len(tokenizer.encode("明月光")) == 3  # one token per character
    assert tokenizer.encode("月☃") == [tokenizer.encode("月")[0], tokenizer.unk_id]
    assert tokenizer.decode(tokenizer.encode("☃")) == "<unk>"
    assert tokenizer.vocab_size == len(set("".join(corpus))) + 2  # + <eos>, <unk>

    tokenizer.save(tmp_path)
    saved = json.loads((tmp_path / CHAR_FILE).read_text(encoding="utf-8"))
    assert saved["kind"] == "char" and "月" in saved["chars"]  # readable JSON, not escapes
    loaded = load_tokenizer("char", tmp_path)
    assert loaded.encode(MIXED) == tokenizer.encode(MIXED)
    assert loaded.fingerprint() == tokenizer.fingerprint()
    assert CharTokenizer.train([*corpus, "☃"]).fingerprint() != tokenizer.fingerprint()


def test_bpe_tokenizer_trains_to_its_vocab_size_and_encodes_any_text(
    corpus: list[str], tmp_path: Path
) -> None:
    tokenizer = BPETokenizer.train(corpus, vocab_size=400)
    assert tokenizer.vocab_size == 400
    assert tokenizer.decode(tokenizer.encode(MIXED)) == MIXED
    unseen = "Snowman ☃ 鬱 🙂"  # byte-level: nothing is unknown
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen
    assert len(tokenizer.encode("Drain the moat.")) < len("Drain the moat.")  # merges were learned
    assert tokenizer.decode([tokenizer.eos_id]) == "<eos>"

    tokenizer.save(tmp_path)
    assert json.loads((tmp_path / BPE_FILE).read_text(encoding="utf-8"))["model"]["type"] == "BPE"
    loaded = load_tokenizer("bpe", tmp_path)
    assert loaded.encode(unseen) == tokenizer.encode(unseen)
    assert loaded.fingerprint() == tokenizer.fingerprint()
    # training is deterministic: the same text gives the same tokenizer, another size another
    assert BPETokenizer.train(corpus, vocab_size=400).fingerprint() == tokenizer.fingerprint()
    assert BPETokenizer.train(corpus, vocab_size=300).fingerprint() != tokenizer.fingerprint()


def test_bad_tokenizer_requests_say_what_to_use(corpus: list[str], tmp_path: Path) -> None:
    with pytest.raises(GenloopError, match="unknown tokenizer 'words'"):
        train_tokenizer("words", corpus)
    with pytest.raises(GenloopError, match="at least 257"):
        train_tokenizer("bpe", corpus, vocab_size=100)
    with pytest.raises(GenloopError, match=r"char_vocab\.json is missing"):
        load_tokenizer("char", tmp_path)

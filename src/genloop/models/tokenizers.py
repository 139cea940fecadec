"""Text tokenizers for the GPT family: characters, or byte-level BPE (Hugging Face `tokenizers`).

    char   one token per character (Chinese and English alike); the vocabulary is the set of
           characters of the training text, plus <eos> (ends a record) and <unk> (a character
           the training text never had). Saved as `char_vocab.json`.
    bpe    byte-level BPE (GPT-2 style: any UTF-8 text encodes, nothing is <unk>), trained on
           the training text up to `vocab_size` tokens, plus <eos>. Saved as `tokenizer.json`.

Both share one interface (encode / decode / vocab_size / eos_id / save / load) and a
`fingerprint`: the SHA-256 of the vocabulary, so a checkpoint trained with one tokenizer
is never continued with another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from genloop.errors import GenloopError, MissingDependencyError, NotFoundError
from genloop.storage import atomic_write_bytes

EOS = "<eos>"
UNK = "<unk>"
CHAR_FILE = "char_vocab.json"
BPE_FILE = "tokenizer.json"
TOKENIZER_KINDS = ("char", "bpe")
MIN_BPE_VOCAB = 257  # the 256 byte tokens + <eos>


class TextTokenizer(Protocol):
    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, directory: Path) -> None: ...

    def fingerprint(self) -> str: ...


class CharTokenizer:
    """id 0 = <eos>, id 1 = <unk>, then the training text's characters in code-point order."""

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise GenloopError("a char tokenizer's vocabulary must be distinct single characters")
        self.chars = list(chars)
        self._ids = {c: i + 2 for i, c in enumerate(self.chars)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls(sorted(seen))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    @property
    def eos_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(c, unk) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        specials = (EOS, UNK)
        return "".join(self.chars[i - 2] if i >= 2 else specials[i] for i in ids)

    def _payload(self) -> dict[str, Any]:
        return {"kind": "char", "specials": [EOS, UNK], "chars": self.chars}

    def save(self, directory: Path) -> None:
        data = json.dumps(self._payload(), ensure_ascii=False, indent=0).encode("utf-8")
        atomic_write_bytes(Path(directory) / CHAR_FILE, data)

    @classmethod
    def load(cls, directory: Path) -> CharTokenizer:
        payload = json.loads(_read(Path(directory) / CHAR_FILE))
        return cls(payload["chars"])

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self._payload(), ensure_ascii=False).encode()).hexdigest()


class BPETokenizer:
    """Byte-level BPE from Hugging Face `tokenizers`; <eos> is a special token (id 0)."""

    kind = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        eos = tokenizer.token_to_id(EOS)
        if eos is None:
            raise GenloopError(f"the BPE tokenizer has no {EOS} token", hint="retrain it with genloop")
        self._eos = int(eos)

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int) -> BPETokenizer:
        if vocab_size < MIN_BPE_VOCAB:
            raise GenloopError(f"a byte-level BPE vocabulary needs at least {MIN_BPE_VOCAB} tokens")
        tk = _tokenizers()
        tokenizer = tk.Tokenizer(tk.models.BPE())
        # no prefix space: a record's first word encodes as it would mid-text
        tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS],
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    @property
    def eos_id(self) -> int:
        return self._eos

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text).ids)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    def save(self, directory: Path) -> None:
        atomic_write_bytes(Path(directory) / BPE_FILE, self.tokenizer.to_str().encode("utf-8"))

    @classmethod
    def load(cls, directory: Path) -> BPETokenizer:
        return cls(_tokenizers().Tokenizer.from_str(_read(Path(directory) / BPE_FILE)))

    def fingerprint(self) -> str:
        # vocabulary and merges decide every encoding; the rest of the JSON is settings
        model = json.loads(self.tokenizer.to_str())["model"]
        canonical = json.dumps([sorted(model["vocab"].items()), model["merges"]], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def train_tokenizer(kind: str, texts: Iterable[str], *, vocab_size: int | None = None) -> TextTokenizer:
    """A `kind` tokenizer trained on `texts` (for bpe, up to `vocab_size` tokens)."""
    if kind == "char":
        return CharTokenizer.train(texts)
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size=vocab_size or 2048)
    raise GenloopError(f"unknown tokenizer {kind!r}", hint=f"use one of {', '.join(TOKENIZER_KINDS)}")


def load_tokenizer(kind: str, directory: Path) -> TextTokenizer:
    """The `kind` tokenizer saved in `directory` (beside a model's weights)."""
    if kind == "char":
        return CharTokenizer.load(directory)
    if kind == "bpe":
        return BPETokenizer.load(directory)
    raise GenloopError(f"unknown tokenizer {kind!r}", hint=f"use one of {', '.join(TOKENIZER_KINDS)}")


def _read(path: Path) -> str:
    if not path.is_file():
        raise NotFoundError(f"{path} is missing", hint="the model directory lacks its tokenizer; retrain")
    return path.read_text(encoding="utf-8")


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError(
            "the bpe tokenizer needs Hugging Face `tokenizers`",
            hint="pip install 'genloop[hf]', or set [train.model] tokenizer = \"char\"",
        ) from exc
    return tokenizers

"""Text dataset versions → one token stream per split, for language-model training.

    stream = r₁ <eos> r₂ <eos> … rₙ <eos>          (int32, one token per position)

Records are UTF-8 text; each is followed by <eos>, so the model learns where a text ends
and generation that starts after <eos> starts a new text. The train stream concatenates
the train split of every dataset (each repeated `repeat` times); the held-out stream is the
first dataset's test split. Memory: the texts of one split as Python strings plus 4 bytes
per token (5 M characters ≈ 30 MB); records are encoded one at a time into int32 arrays.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError
from genloop.models.tokenizers import TextTokenizer

HELDOUT_FALLBACK = 0.1
"""Share of the train stream's tail held out when a dataset has no (or too small a) test split."""


@dataclass(frozen=True)
class TokenStreams:
    train: torch.Tensor  # (N,) int32
    heldout: torch.Tensor  # (M,) int32
    heldout_from_train: bool
    """True when the dataset had too little test text and the train stream's tail was held out."""


def record_texts(dataset: DatasetHandle, split: str) -> Iterator[str]:
    """The UTF-8 texts of one split; a DataError names the first record that is not text."""
    for record in dataset.iter_records(split):
        if record.modality != "text":
            raise DataError(
                f"dataset {dataset.id}: {record.where} is {record.modality}, not text",
                hint='the gpt family trains on text datasets ([collect] modality = "text")',
            )
        try:
            yield record.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"dataset {dataset.id}: {record.where} is not UTF-8 ({exc})") from None


def train_texts(uses: Sequence[tuple[DatasetHandle, int]]) -> list[str]:
    """Train-split texts of every (dataset, repeat), in dataset then record order."""
    texts: list[str] = []
    for dataset, repeat in uses:
        if repeat < 0:
            raise DataError(f"dataset {dataset.id}: repeat must be ≥ 0 (got {repeat})")
        texts.extend(list(record_texts(dataset, "train")) * repeat)
    return texts


def encode_stream(texts: Iterable[str], tokenizer: TextTokenizer) -> torch.Tensor:
    """Each text's tokens followed by <eos>, concatenated → (N,) int32."""
    stream = array("i")
    eos = tokenizer.eos_id
    for text in texts:
        stream.extend(tokenizer.encode(text))
        stream.append(eos)
    return (
        torch.frombuffer(stream, dtype=torch.int32).clone() if stream else torch.zeros(0, dtype=torch.int32)
    )


def token_streams(
    train: list[str], heldout: Iterable[str], tokenizer: TextTokenizer, *, block_size: int
) -> TokenStreams:
    """Encode both splits; a DataError when the train text cannot fill one block."""
    train_stream = encode_stream(train, tokenizer)
    heldout_stream = encode_stream(heldout, tokenizer)
    if len(train_stream) < block_size + 2:
        raise DataError(
            f"the train split has {len(train_stream)} tokens, fewer than one block of {block_size} + 2",
            hint="collect more text, or lower [train.model] block_size",
        )
    if len(heldout_stream) >= block_size + 1:
        return TokenStreams(train_stream, heldout_stream, heldout_from_train=False)
    cut = len(train_stream) - max(block_size + 1, int(len(train_stream) * HELDOUT_FALLBACK))
    if cut < block_size + 2:
        raise DataError(
            f"too little text: {len(train_stream)} train tokens and {len(heldout_stream)} held-out tokens "
            f"cannot give a train and a held-out block of {block_size} tokens",
            hint="collect more text, or lower [train.model] block_size",
        )
    return TokenStreams(train_stream[:cut], train_stream[cut:], heldout_from_train=True)

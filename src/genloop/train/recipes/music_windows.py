"""Training data of the music recipe: tokenized pieces, random windows, transposition, held-out loss.

    piece    [BOS, e_1, …, e_L, EOS]                   REMI event ids of one MIDI file
    window   inputs  = [COND_y, p_s, …, p_{s+T−2}]     (T,) the condition token, then events
             targets = [p_s, …, p_{s+T−1}]             (T,) the next event at every position
             PAD-filled past the piece's end (PAD targets are ignored by the loss)

A training batch is drawn from a generator seeded by (seed, step) alone, so step s has the
same windows whether or not the run was interrupted before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, GenloopError
from genloop.models.music import MusicTransformer
from genloop.models.music_tokens import MusicTokenizer
from genloop.train.data_order import step_generator
from genloop.train.runs import DatasetUse

EVAL_BATCH = 32


@dataclass
class Pieces:
    """Tokenized pieces: event ids and the condition (class index) of each."""

    tokens: list[torch.Tensor]  # each (L_i,) long: BOS … EOS
    labels: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def tokenize_split(
    dataset: DatasetHandle, split: str, classes: list[str], tokenizer: MusicTokenizer
) -> Pieces:
    """Every record of `split` as a piece; a DataError naming a record that cannot be used."""
    pieces = Pieces([], [])
    for record in dataset.iter_records(split):
        if record.modality != "music":
            raise DataError(
                f"{record.where} in dataset {dataset.id} is {record.modality}, not music",
                hint='the music family trains on MIDI records: set [collect].modality = "music"',
            )
        if classes and record.label not in classes:
            raise DataError(
                f"{record.where} in dataset {dataset.id} has label {record.label!r}, "
                f"not one of the classes {classes}",
                hint="relabel it (`genloop annotate`) or leave it out of the training data",
            )
        pieces.tokens.append(torch.tensor(tokenizer.encode(record.payload, where=record.where)))
        pieces.labels.append(classes.index(record.label) if classes and record.label else 0)
    return pieces


def train_pieces(uses: Sequence[DatasetUse], classes: list[str], tokenizer: MusicTokenizer) -> Pieces:
    """Train split of every dataset, each repeated `repeat` times."""
    pieces = Pieces([], [])
    for use in uses:
        if use.repeat < 0:
            raise GenloopError(f"dataset {use.dataset.id}: repeat must be ≥ 0 (got {use.repeat})")
        own = tokenize_split(use.dataset, "train", classes, tokenizer)
        pieces.tokens += own.tokens * use.repeat
        pieces.labels += own.labels * use.repeat
    if not pieces.tokens:
        raise DataError(
            f"dataset {uses[0].dataset.id} has no music records in the train split",
            hint="collect more data, or lower [collect].test_fraction",
        )
    return pieces


def window(
    model: MusicTransformer, piece: torch.Tensor, label: int, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs = [COND, piece[s : s+T−1]], targets = piece[s : s+T], both (T,), PAD-filled at the end."""
    T = model.config.block_size
    events = piece[start : start + T]
    pad = model.tokenizer.pad_id
    inputs = torch.full((T,), pad, dtype=torch.long)
    targets = torch.full((T,), pad, dtype=torch.long)
    inputs[0] = model.events + label
    inputs[1 : len(events)] = events[: len(events) - 1]
    targets[: len(events)] = events
    return inputs, targets


def training_batch(
    model: MusicTransformer,
    pieces: Pieces,
    *,
    batch_size: int,
    seed: int,
    step: int,
    shift_table: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of step `step`: (inputs, targets), (B, T) each. Same (seed, step), same batch.

    With `shift_table` ((2n + 1, V), `MusicTokenizer.pitch_shift_table(n)`) each window is
    transposed by a random k ∈ [−n, n] semitones.
    """
    generator = step_generator(seed, step)
    T = model.config.block_size
    # a piece is drawn in proportion to its windows, so every token is about equally likely
    weights = torch.tensor([max(1, len(p) - T + 1) for p in pieces.tokens], dtype=torch.float)
    chosen = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
    fractions = torch.rand(batch_size, generator=generator)
    limit = 0 if shift_table is None else (len(shift_table) - 1) // 2
    shifts = torch.randint(-limit, limit + 1, (batch_size,), generator=generator)  # semitones, per window
    rows = []
    for index, fraction, shift in zip(chosen.tolist(), fractions.tolist(), shifts.tolist(), strict=True):
        piece = pieces.tokens[index]
        start = int(fraction * max(1, len(piece) - T + 1))
        inputs, targets = window(model, piece, pieces.labels[index], start)
        if shift_table is not None and shift:
            inputs, targets = transpose(inputs, targets, shift_table[shift + limit], model.events)
        rows.append((inputs, targets))
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def transpose(
    inputs: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, events: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map event ids through one row (V,) of a pitch-shift table; the condition token (≥ `events`)
    stays. The window is returned untouched when a pitch would leave the tokenizer's range."""
    moved_inputs = torch.where(inputs < events, table[inputs.clamp(max=events - 1)], inputs)  # COND stays
    moved_targets = table[targets]
    if (moved_inputs < 0).any() or (moved_targets < 0).any():
        return inputs, targets
    return moved_inputs, moved_targets


@torch.no_grad()
def heldout_loss(model: MusicTransformer, pieces: Pieces, max_windows: int, device: torch.device) -> float:
    """Mean next-event cross-entropy (nats per token) over consecutive windows of the test pieces."""
    T = model.config.block_size
    windows = [
        window(model, piece, label, start)
        for piece, label in zip(pieces.tokens, pieces.labels, strict=True)
        for start in range(0, max(1, len(piece) - 1), T)
    ][:max_windows]
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for first in range(0, len(windows), EVAL_BATCH):
        chunk = windows[first : first + EVAL_BATCH]
        inputs = torch.stack([w[0] for w in chunk]).to(device)
        targets = torch.stack([w[1] for w in chunk]).to(device)
        tokens = int((targets != model.tokenizer.pad_id).sum())
        total += float(model.loss(inputs, targets)) * tokens
        count += tokens
    model.train(was_training)
    return total / max(1, count)

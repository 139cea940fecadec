"""Improve a text or music model from feedback: SFT on liked and edited items, DPO on pairs, KTO on
unpaired thumbs — one loop for genloop's GPT, the music Transformer and Hugging Face causal LMs.

    model  ──Scorer──▶  log π(completion | prompt)          (GPTScorer, MusicScorer, HFScorer)
    sft(scorer, [Liked])          L = SFT + λ_orig · LM(original data)
    dpo(scorer, [PreferencePair]) L = DPO + λ_orig · LM(original data)
    kto(scorer, [Thumb])          L = KTO + λ_orig · LM(original data)

The reference policy π_ref is the model as it comes in: its log-probabilities of every training
completion are computed once before the first step (so no frozen copy is kept, and a LoRA
model's base stays shared). KTO's KL estimate pairs example i's prompt with example i+1's
completion (a fixed mismatch, so those reference numbers are precomputed too). Dropout is off
throughout (the model runs in eval mode with gradients), so π = π_ref exactly at step 0 —
TRL's default for the same reason. The LM loss on the original training data, mixed in at
weight `original_weight`, holds the model's general quality while it moves toward the feedback.

Each function returns the trained model (the same object, updated in place) and `ImproveStats`:
the loss curve and the preference numbers before and after, for the gate and the report. For a
Hugging Face model `dpo_trl` / `kto_trl` run the same through TRL's trainers when TRL is
installed; the losses here are the reference implementation and need only torch.

Music: the prompt is the class label ("" for an unconditional model or the first class) and a
completion is a MIDI file or its event ids; pieces longer than the context are scored on their
opening block_size − 1 events.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from genloop.config import TrainConfig
from genloop.errors import GenloopError
from genloop.improve.preference_losses import (
    PreferenceLoss,
    completion_batch,
    dpo_loss,
    kto_loss,
    sequence_log_probs,
    sft_loss,
)
from genloop.models.gpt import GPT
from genloop.models.hf_causal_lm import HFCausalLM
from genloop.models.music import MusicTransformer
from genloop.train.data_order import step_generator
from genloop.train.optim import build_optimizer, clip_gradients
from genloop.train.recipes.music_windows import Pieces, training_batch

Completion = str | bytes | Sequence[int]
"""A text, a MIDI file (music), or the token ids of either (used as given)."""
ModelT = TypeVar("ModelT", bound=nn.Module)
Row = tuple[list[int], list[int]]  # (prompt ids, completion ids)


@dataclass(frozen=True)
class Liked:
    """A liked item, or an edited one (the correction is gold: give it a larger weight)."""

    prompt: str
    completion: Completion
    weight: float = 1.0


@dataclass(frozen=True)
class PreferencePair:
    """Two completions of one prompt, the chosen one preferred by a viewer."""

    prompt: str
    chosen: Completion
    rejected: Completion


@dataclass(frozen=True)
class Thumb:
    """One completion with a thumb up (desirable) or down."""

    prompt: str
    completion: Completion
    desirable: bool


@dataclass
class ImproveOptions:
    steps: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    beta: float = 0.1
    """DPO/KTO: strength of the implicit KL penalty to the reference (larger: stay closer)."""
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    original_weight: float = 1.0
    """Weight of the LM loss on the original training data (0: feedback only)."""
    original_batch_size: int = 8
    grad_clip: float | None = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1 or self.batch_size < 1 or self.original_batch_size < 1:
            problems.append("steps, batch_size and original_batch_size must be ≥ 1")
        if self.learning_rate <= 0 or self.beta <= 0:
            problems.append(f"learning_rate and beta must be > 0 (got {self.learning_rate}, {self.beta})")
        if min(self.weight_decay, self.desirable_weight, self.undesirable_weight, self.original_weight) < 0:
            problems.append("weight_decay and the desirable/undesirable/original weights must be ≥ 0")
        if problems:
            raise GenloopError("invalid improve options: " + "; ".join(problems), hint="fix [improve]")


@dataclass
class ImproveStats:
    method: str
    steps: int
    losses: list[float] = field(default_factory=list)
    """The feedback loss (SFT, DPO or KTO) per step."""
    original_losses: list[float] = field(default_factory=list)
    """The LM loss on the original data per step (empty when none was mixed in)."""
    train_accuracy: list[float] = field(default_factory=list)
    """DPO/KTO: the batch's implicit-reward accuracy per step."""
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)


@dataclass
class Improved(Generic[ModelT]):
    model: ModelT
    stats: ImproveStats


class Scorer(Protocol[ModelT]):
    """What the loops need of a model family."""

    model: ModelT
    pad_id: int
    max_length: int

    def encode(self, prompt: str, completion: Completion) -> Row: ...

    def logits(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def original_loss(self, batch_size: int, seed: int, step: int) -> torch.Tensor | None: ...


# -- the three recipes ---------------------------------------------------------------------------------


def sft(
    scorer: Scorer[ModelT], items: Sequence[Liked], options: ImproveOptions | None = None
) -> Improved[ModelT]:
    """Supervised fine-tuning on liked/edited items, per-token weighted (`Liked.weight`)."""
    options = options or ImproveOptions()
    _require(items, "sft", "liked or edited items")
    rows = [scorer.encode(item.prompt, item.completion) for item in items]
    weights = torch.tensor([float(item.weight) for item in items])

    def objective(batch: torch.Tensor) -> PreferenceLoss:
        logps, lengths = _log_probs(scorer, [rows[i] for i in batch])
        return PreferenceLoss(sft_loss(logps, lengths, weights[batch]), logps.detach(), float("nan"))

    def measure() -> dict[str, float]:
        logps, lengths = _log_probs_no_grad(scorer, rows, options.batch_size)
        return {"nll_per_token": float(-(logps.sum() / lengths.sum()))}

    return _run("sft", scorer, len(rows), objective, measure, options)


def dpo(
    scorer: Scorer[ModelT], pairs: Sequence[PreferencePair], options: ImproveOptions | None = None
) -> Improved[ModelT]:
    """Direct preference optimisation on (prompt, chosen, rejected) pairs."""
    options = options or ImproveOptions()
    _require(pairs, "dpo", "preference pairs")
    chosen = [scorer.encode(p.prompt, p.chosen) for p in pairs]
    rejected = [scorer.encode(p.prompt, p.rejected) for p in pairs]
    ref_chosen = _log_probs_no_grad(scorer, chosen, options.batch_size)[0]
    ref_rejected = _log_probs_no_grad(scorer, rejected, options.batch_size)[0]

    def objective(batch: torch.Tensor) -> PreferenceLoss:
        both = _log_probs(scorer, [chosen[i] for i in batch] + [rejected[i] for i in batch])[0]
        policy_chosen, policy_rejected = both.split(len(batch))
        return dpo_loss(
            policy_chosen, policy_rejected, ref_chosen[batch], ref_rejected[batch], beta=options.beta
        )

    def measure() -> dict[str, float]:
        return pair_margins(scorer, pairs, batch_size=options.batch_size)

    return _run("dpo", scorer, len(pairs), objective, measure, options)


def kto(
    scorer: Scorer[ModelT], thumbs: Sequence[Thumb], options: ImproveOptions | None = None
) -> Improved[ModelT]:
    """Kahneman-Tversky optimisation on unpaired thumbs up/down."""
    options = options or ImproveOptions()
    _require(thumbs, "kto", "thumbs")
    rows = [scorer.encode(t.prompt, t.completion) for t in thumbs]
    # the KL estimate's fixed mismatch: prompt i with completion i+1
    mismatched = [(rows[i][0], rows[(i + 1) % len(rows)][1]) for i in range(len(rows))]
    desirable = torch.tensor([t.desirable for t in thumbs])
    reference = _log_probs_no_grad(scorer, rows, options.batch_size)[0]
    reference_mismatched = _log_probs_no_grad(scorer, mismatched, options.batch_size)[0]

    def objective(batch: torch.Tensor) -> PreferenceLoss:
        both = _log_probs(scorer, [rows[i] for i in batch] + [mismatched[i] for i in batch])[0]
        policy, policy_mismatched = both.split(len(batch))
        return kto_loss(
            policy,
            reference[batch],
            desirable[batch].to(policy.device),
            policy_mismatched,
            reference_mismatched[batch],
            beta=options.beta,
            desirable_weight=options.desirable_weight,
            undesirable_weight=options.undesirable_weight,
        )

    def measure() -> dict[str, float]:
        logps, lengths = _log_probs_no_grad(scorer, rows, options.batch_size)
        per_token = logps / lengths
        up, down = per_token[desirable], per_token[~desirable]
        numbers = {"desirable_logp_per_token": float(up.mean()) if len(up) else float("nan")}
        numbers["undesirable_logp_per_token"] = float(down.mean()) if len(down) else float("nan")
        return numbers

    return _run("kto", scorer, len(rows), objective, measure, options)


def pair_margins(
    scorer: Scorer[Any], pairs: Sequence[PreferencePair], *, batch_size: int = 8
) -> dict[str, float]:
    """The model's own preference on pairs: mean log π(chosen) − log π(rejected), and the fraction
    of pairs where it is positive (what sampling sees; usable on held-out pairs)."""
    chosen = _log_probs_no_grad(scorer, [scorer.encode(p.prompt, p.chosen) for p in pairs], batch_size)[0]
    rejected = _log_probs_no_grad(scorer, [scorer.encode(p.prompt, p.rejected) for p in pairs], batch_size)[0]
    margin = chosen - rejected
    return {"margin": float(margin.mean()), "accuracy": float((margin > 0).float().mean())}


# -- the shared loop -----------------------------------------------------------------------------------


def _run(
    method: str,
    scorer: Scorer[ModelT],
    n: int,
    objective: Callable[[torch.Tensor], PreferenceLoss],
    measure: Callable[[], dict[str, float]],
    options: ImproveOptions,
) -> Improved[ModelT]:
    """`options.steps` AdamW steps of objective(batch indices) + λ_orig · LM loss on the original data."""
    model = scorer.model
    was_training = model.training
    model.eval()  # dropout off: π = π_ref at step 0, and the DPO/KTO ratios are not noise
    stats = ImproveStats(method=method, steps=options.steps, before=measure())
    cfg = TrainConfig(learning_rate=options.learning_rate, weight_decay=options.weight_decay)
    optimizer = build_optimizer(model.parameters(), cfg)
    order = _Order(n, options.seed)
    try:
        for step in range(options.steps):
            batch = order.take(min(options.batch_size, n))
            result = objective(batch)
            loss = result.loss
            original = None
            if options.original_weight > 0:
                original = scorer.original_loss(options.original_batch_size, options.seed, step)
            if original is not None:
                loss = loss + options.original_weight * original
                stats.original_losses.append(float(original.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(model, options.grad_clip)
            optimizer.step()
            stats.losses.append(float(result.loss.detach()))
            if method != "sft":
                stats.train_accuracy.append(result.accuracy)
        stats.after = measure()
    finally:
        model.train(was_training)
    return Improved(model, stats)


class _Order:
    """Example indices in shuffled epochs, so every example is seen equally often."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.queue = n, seed, 0, torch.empty(0, dtype=torch.long)

    def take(self, k: int) -> torch.Tensor:
        while len(self.queue) < k:
            generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
            self.queue = torch.cat([self.queue, torch.randperm(self.n, generator=generator)])
            self.epoch += 1
        batch, self.queue = self.queue[:k], self.queue[k:]
        return batch


def _log_probs(scorer: Scorer[Any], rows: Sequence[Row]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs (B,) with gradients, and the scored token counts (B,)."""
    inputs, targets, mask = completion_batch(rows, pad_id=scorer.pad_id, max_length=scorer.max_length)
    device = _device(scorer.model)
    mask = mask.to(device)
    logits = scorer.logits(inputs.to(device))  # (B, T, V)
    return sequence_log_probs(logits, targets.to(device), mask), mask.sum(dim=1).float()


@torch.no_grad()
def _log_probs_no_grad(
    scorer: Scorer[Any], rows: Sequence[Row], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = scorer.model.training
    scorer.model.eval()
    try:
        parts = [_log_probs(scorer, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    finally:
        scorer.model.train(was_training)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _require(items: Sequence[Any], method: str, what: str) -> None:
    if not items:
        raise GenloopError(
            f"{method} needs at least one of its {what} (got none)",
            hint="collect more feedback before `genloop improve`, or pick another method",
        )


# -- the model families --------------------------------------------------------------------------------


class GPTScorer:
    """genloop's GPT: a prompt is `<eos> prompt` (as in sampling), a completion `text <eos>`;
    `original` texts are mixed in as random block_size windows of `<eos> text <eos> text …`."""

    def __init__(self, model: GPT, *, original: Sequence[str] = ()) -> None:
        self.model = model
        self.pad_id = model.tokenizer.eos_id
        self.max_length = model.block_size
        eos = model.tokenizer.eos_id
        stream = [token for text in original for token in (eos, *model.tokenizer.encode(text))]
        self.stream = torch.tensor(stream, dtype=torch.long)
        if original and len(self.stream) < model.block_size + 1:
            raise GenloopError(
                f"the original texts hold {len(self.stream)} tokens, fewer than one block "
                f"({model.block_size + 1})",
                hint="pass more of the training data as `original`, or none",
            )

    def encode(self, prompt: str, completion: Completion) -> Row:
        tokenizer = self.model.tokenizer
        if isinstance(completion, bytes):
            raise GenloopError("a gpt completion is text (or token ids), not bytes")
        ids = (
            [*tokenizer.encode(completion), tokenizer.eos_id]
            if isinstance(completion, str)
            else list(completion)
        )
        return [tokenizer.eos_id, *tokenizer.encode(prompt)], ids

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def original_loss(self, batch_size: int, seed: int, step: int) -> torch.Tensor | None:
        if not len(self.stream):
            return None
        T = self.model.block_size
        starts = torch.randint(len(self.stream) - T, (batch_size,), generator=step_generator(seed, step))
        windows = torch.stack([self.stream[s : s + T + 1] for s in starts.tolist()]).to(_device(self.model))
        return self.model(windows[:, :-1], windows[:, 1:])


class MusicScorer:
    """The music Transformer: a prompt is a class label (its condition token), a completion a MIDI
    file or event ids `BOS … EOS`; `original` (label, MIDI or ids) pieces mixed in as windows."""

    def __init__(self, model: MusicTransformer, *, original: Sequence[tuple[str, Completion]] = ()) -> None:
        self.model = model
        self.pad_id = model.tokenizer.pad_id
        self.max_length = model.config.block_size
        pieces = [self.encode(label, piece) for label, piece in original]
        self.pieces = Pieces(
            [torch.tensor(ids) for _, ids in pieces], [prompt[0] - model.events for prompt, _ in pieces]
        )

    def encode(self, prompt: str, completion: Completion) -> Row:
        classes = self.model.classes
        if prompt and prompt not in classes:
            raise GenloopError(
                f"music prompt {prompt!r} is not one of the model's classes {classes}",
                hint='use a class label, or "" for an unconditional model',
            )
        label = classes.index(prompt) if prompt else 0
        if isinstance(completion, str):
            raise GenloopError("a music completion is a MIDI file (bytes) or event ids, not text")
        ids = self.model.tokenizer.encode(completion) if isinstance(completion, bytes) else list(completion)
        return [self.model.events + label], ids

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def original_loss(self, batch_size: int, seed: int, step: int) -> torch.Tensor | None:
        if not self.pieces.tokens:
            return None
        inputs, targets = training_batch(self.model, self.pieces, batch_size=batch_size, seed=seed, step=step)
        device = _device(self.model)
        return self.model.loss(inputs.to(device), targets.to(device))


class HFScorer:
    """A Hugging Face causal LM with its LoRA adapter (only the adapter trains): a prompt is
    `[bos] prompt`, a completion `text [eos]`; `original` texts mixed in as `[bos] text [eos]` rows."""

    def __init__(self, model: HFCausalLM, *, original: Sequence[str] = (), max_length: int = 256) -> None:
        self.model = model
        eos = int(model.tokenizer.eos_token_id)
        pad = model.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else eos
        self.max_length = min(max_length, model.context_length or max_length)
        self.documents = [model.encode_document(text)[: self.max_length] for text in original]

    def encode(self, prompt: str, completion: Completion) -> Row:
        if isinstance(completion, bytes):
            raise GenloopError("an hf-causal-lm completion is text (or token ids), not bytes")
        if isinstance(completion, str):
            tokenizer = self.model.tokenizer
            ids = [*tokenizer.encode(completion, add_special_tokens=False), int(tokenizer.eos_token_id)]
        else:
            ids = list(completion)
        return self.model.encode_prompt(prompt), ids

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def original_loss(self, batch_size: int, seed: int, step: int) -> torch.Tensor | None:
        if not self.documents:
            return None
        chosen = torch.randint(len(self.documents), (batch_size,), generator=step_generator(seed, step))
        rows = [
            (self.documents[i][:1], self.documents[i][1:])
            for i in chosen.tolist()
            if len(self.documents[i]) > 1
        ]
        if not rows:
            return None
        logps, lengths = _log_probs(self, rows)
        return -logps.sum() / lengths.sum()


# -- Hugging Face models through TRL -------------------------------------------------------------------


def dpo_trl(
    model: HFCausalLM,
    pairs: Sequence[PreferencePair],
    output_dir: Path,
    options: ImproveOptions | None = None,
) -> Improved[HFCausalLM]:
    """DPO of a LoRA model with TRL's DPOTrainer (reference: the base with the adapter off).

    TRL tokenizes prompts and completions by its own conventions and mixes in no original data
    (`original_weight` does not apply); `dpo(HFScorer(model, original=…), pairs)` does. Scratch
    files go to `output_dir` (no checkpoints are saved)."""
    trl = _require_trl()
    options = options or ImproveOptions()
    _require(pairs, "dpo", "preference pairs")
    rows = [{"prompt": p.prompt, "chosen": _text(p.chosen), "rejected": _text(p.rejected)} for p in pairs]
    config = trl.DPOConfig(beta=options.beta, **_trainer_args(model, output_dir, options))
    return _train_with_trl("dpo", model, trl.DPOTrainer, config, rows, pairs, options)


def kto_trl(
    model: HFCausalLM, thumbs: Sequence[Thumb], output_dir: Path, options: ImproveOptions | None = None
) -> Improved[HFCausalLM]:
    """KTO of a LoRA model with TRL's KTOTrainer (its KL estimate needs batch_size ≥ 2)."""
    trl = _require_trl()
    options = options or ImproveOptions()
    _require(thumbs, "kto", "thumbs")
    rows = [
        {"prompt": t.prompt, "completion": _text(t.completion), "label": bool(t.desirable)} for t in thumbs
    ]
    pairs = _pairs_of(thumbs)
    config = trl.KTOConfig(
        beta=options.beta,
        desirable_weight=options.desirable_weight,
        undesirable_weight=options.undesirable_weight,
        **_trainer_args(model, output_dir, replace(options, batch_size=max(2, options.batch_size))),
    )
    return _train_with_trl("kto", model, trl.KTOTrainer, config, rows, pairs, options)


def _train_with_trl(
    method: str,
    model: HFCausalLM,
    trainer_class: Any,
    config: Any,
    rows: list[dict[str, Any]],
    pairs: Sequence[PreferencePair],
    options: ImproveOptions,
) -> Improved[HFCausalLM]:
    from datasets import Dataset

    scorer = HFScorer(model)
    stats = ImproveStats(method=f"{method}-trl", steps=options.steps)
    if pairs:
        stats.before = pair_margins(scorer, pairs, batch_size=options.batch_size)
    was_training = model.training
    adapters, active = set(model.peft.peft_config), model.peft.active_adapter
    try:
        with warnings.catch_warnings():  # TRL warns about defaults it picks for a model it did not load
            warnings.simplefilter("ignore")
            trainer = trainer_class(
                model=model.peft,
                args=config,
                train_dataset=Dataset.from_list(rows),
                processing_class=model.tokenizer,
            )
            trainer.train()
    finally:
        model.train(was_training)
        for name in set(model.peft.peft_config) - adapters:  # TRL's copy of the adapter as reference
            model.peft.delete_adapter(name)
        model.peft.set_adapter(active)
    history = trainer.state.log_history
    stats.losses = [float(e["loss"]) for e in history if "loss" in e]
    stats.train_accuracy = [float(e["rewards/accuracies"]) for e in history if "rewards/accuracies" in e]
    if pairs:
        stats.after = pair_margins(scorer, pairs, batch_size=options.batch_size)
    return Improved(model, stats)


def _trainer_args(model: HFCausalLM, output_dir: Path, options: ImproveOptions) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "max_steps": options.steps,
        "per_device_train_batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
        "weight_decay": options.weight_decay,
        "max_grad_norm": options.grad_clip or 0.0,
        "lr_scheduler_type": "constant",
        "seed": options.seed,
        "report_to": [],
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "use_cpu": _device(model).type == "cpu",
    }


def _pairs_of(thumbs: Sequence[Thumb]) -> list[PreferencePair]:
    """Pairs of an up and a down thumb on the same prompt, to measure the model's preference."""
    up = {t.prompt: t.completion for t in thumbs if t.desirable}
    return [
        PreferencePair(t.prompt, up[t.prompt], t.completion)
        for t in thumbs
        if not t.desirable and t.prompt in up
    ]


def _text(completion: Completion) -> str:
    if not isinstance(completion, str):
        raise GenloopError("TRL trains on text completions; pass strings, not bytes or token ids")
    return completion


def _require_trl() -> Any:
    try:
        import trl
    except ImportError:
        raise GenloopError(
            "TRL is not installed",
            hint="pip install trl (or use dpo/kto with HFScorer, genloop's own losses)",
        ) from None
    return trl

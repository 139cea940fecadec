"""Music training recipe: a MusicTransformer on REMI tokens of the dataset's MIDI, one explicit loop.

    setup    tokenize every piece (train split of each dataset, `repeat` times; test split held
             out), model (fresh, or a parent version to fine-tune), AdamW + warm-up/cosine;
             refuse a checkpoint made with another tokenizer; resume from the newest one
    train    step s draws `batch_size` random windows with a generator seeded by (seed, s), so a
             resumed run sees exactly the batches it would have seen; optional transposition by
             ±`transpose_semitones`; minimise the next-event cross-entropy; clip gradients;
             checkpoint every `checkpoint_every_steps` and at each epoch end; held-out loss, early
             stopping and a MIDI sample (`samples/step-000123.mid`) every `eval_every_steps` (unset:
             at each epoch end) and after the last step
    save     register the model version (EMA weights when `ema_decay` is set)

An "epoch" is as many steps as it takes to draw each training token once on average:
⌈train tokens / (batch_size · block_size)⌉. Options of this recipe (not of the model) go in
`[train.model]` beside the model's: `transpose_semitones`, `sample_tokens`, `eval_windows`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.music import MusicConfig, MusicTransformer
from genloop.models.music_tokens import MusicTokenizer, MusicTokenizerConfig
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import say
from genloop.train.checkpoint import TrainerState, latest_checkpoint
from genloop.train.device import autocast
from genloop.train.early_stopping import EarlyStopping
from genloop.train.ema import ExponentialMovingAverage
from genloop.train.optim import build_optimizer, build_scheduler, clip_gradients, total_steps
from genloop.train.recipes.music_windows import (
    Pieces,
    heldout_loss,
    tokenize_split,
    train_pieces,
    training_batch,
)
from genloop.train.runs import DatasetUse, TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.workspace import Workspace

FAMILY = "music"
LOG_EVERY_STEPS = 5

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 1,
        "max_steps": 20,
        "batch_size": 4,
        "learning_rate": 3e-3,
        "checkpoint_every_steps": 10,
        "model": {
            "n_layer": 1,
            "n_head": 2,
            "n_embd": 32,
            "block_size": 64,
            "dropout": 0.0,
            "sample_tokens": 64,
        },
    },
    "cpu": {
        "epochs": 20,
        "max_steps": 600,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "weight_decay": 0.1,
        "lr_schedule": "cosine",
        "warmup_steps": 50,
        "grad_clip": 1.0,
        "eval_every_steps": 100,
        "early_stopping_patience": 4,
        "checkpoint_every_steps": 100,
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 256, "dropout": 0.1},
    },
    "gpu": {
        "epochs": 200,
        "max_steps": 20_000,
        "batch_size": 64,
        "learning_rate": 6e-4,
        "weight_decay": 0.1,
        "lr_schedule": "cosine",
        "warmup_steps": 500,
        "grad_clip": 1.0,
        "eval_every_steps": 500,
        "early_stopping_patience": 6,
        "checkpoint_every_steps": 500,
        "precision": "bf16",
        "ema_decay": 0.999,
        "model": {
            "n_layer": 8,
            "n_head": 8,
            "n_embd": 512,
            "block_size": 1024,
            "dropout": 0.1,
            "transpose_semitones": 5,
        },
    },
}


@dataclass(frozen=True)
class MusicTrainOptions:
    """The recipe's own `[train.model]` options (the rest configure the model)."""

    transpose_semitones: int = 0
    """Transpose each training window by a random k ∈ [−n, n] semitones (data augmentation)."""
    sample_tokens: int = 256
    """Events in the MIDI sample written at each evaluation."""
    eval_windows: int = 256
    """At most this many block_size windows of the test split are scored per evaluation."""

    def __post_init__(self) -> None:
        if not 0 <= self.transpose_semitones <= 12 or self.sample_tokens < 1 or self.eval_windows < 1:
            raise GenloopError(
                "invalid [train.model] options: transpose_semitones must be in 0..12, sample_tokens and "
                f"eval_windows ≥ 1 (got {self.transpose_semitones}, {self.sample_tokens}, "
                f"{self.eval_windows})",
                hint="fix [train.model] in genloop.toml",
            )


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], MusicTrainOptions]:
    """[train.model] → (model options, recipe options)."""
    recipe_keys = {f.name for f in fields(MusicTrainOptions)}
    model_options = {k: v for k, v in options.items() if k not in recipe_keys}
    return model_options, MusicTrainOptions(**{k: v for k, v in options.items() if k in recipe_keys})


@dataclass
class _Loop:
    """Everything the training loop touches."""

    model: MusicTransformer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    ema: ExponentialMovingAverage | None
    train: Pieces
    test: Pieces
    shift_table: torch.Tensor | None  # (2n + 1, V), see MusicTokenizer.pitch_shift_table
    options: MusicTrainOptions
    session: TrainingSession

    @property
    def state(self) -> TrainerState:
        return self.session.state

    @property
    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "early_stopping": self.stopper,
        }
        if self.ema is not None:
            parts["ema"] = self.ema
        return parts

    @property
    def evaluated_model(self) -> MusicTransformer:
        return self.ema.model if self.ema is not None else self.model  # type: ignore[return-value]


def train(
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    cfg: TrainConfig,
    *,
    model_name: str,
    init_from: str | None = None,
    extra_datasets: Sequence[tuple[DatasetHandle, str, int]] = (),
    alias: str | None = "champion",
    feedback_count: int = 0,
) -> TrainResult:
    """Train (or resume, or reuse) the run these inputs identify; see `genloop.train.train_model`."""
    parent = load_model_version(workspace, catalog, init_from) if init_from else None
    uses = dataset_uses(dataset, extra_datasets)
    model_config, options = _configs(cfg, dataset, parent)  # every config error, before any run exists
    tokenizer = MusicTokenizer(MusicTokenizerConfig.from_dict(model_config.tokenizer))
    session = TrainingSession(
        workspace,
        catalog,
        family=FAMILY,
        model_name=model_name,
        cfg=cfg,
        model_config=asdict(model_config),
        uses=uses,
        parent_id=parent.version_id if parent else None,
    )

    def body() -> MusicTransformer:
        _refuse_other_tokenizer(session, tokenizer)
        loop = _setup(session, model_config, options, tokenizer, uses, parent)
        session.resume(loop.model, loop.parts)
        _train(loop, cfg)
        return loop.evaluated_model

    return session.run(body, alias=alias, feedback_count=feedback_count)


# -- setup -----------------------------------------------------------------------------------------


def _configs(
    cfg: TrainConfig, dataset: DatasetHandle, parent: LoadedModel | None
) -> tuple[MusicConfig, MusicTrainOptions]:
    """A fresh model's config from [train.model]; a fine-tuned one keeps its parent's architecture."""
    model_options, options = split_options(cfg.model)
    if parent is None:
        return MusicConfig.from_options(model_options, classes=dataset.classes), options
    if parent.family != FAMILY:
        raise GenloopError(
            f"{parent.version_id} is a {parent.family!r} model; "
            "the music recipe fine-tunes music models only",
            hint="fine-tune from a music model version, or set [train].family to match",
        )
    return MusicConfig(**{k: v for k, v in parent.config.items() if k != "family"}), options


def _refuse_other_tokenizer(session: TrainingSession, tokenizer: MusicTokenizer) -> None:
    """A checkpoint whose token ids mean other events must not be resumed (it would learn noise)."""
    checkpoint = latest_checkpoint(session.run_dir)
    if checkpoint is None:
        return
    saved = json.loads((checkpoint / "config.json").read_text(encoding="utf-8")).get("tokenizer_fingerprint")
    if saved != tokenizer.fingerprint:
        raise GenloopError(
            f"run {session.run_id} was checkpointed with tokenizer {saved}, but this installation builds "
            f"tokenizer {tokenizer.fingerprint} from the same options (another miditok version?)",
            hint=f"install the miditok version the run started with, or remove {session.run_dir} "
            "to start over",
        )


def _setup(
    session: TrainingSession,
    model_config: MusicConfig,
    options: MusicTrainOptions,
    tokenizer: MusicTokenizer,
    uses: Sequence[DatasetUse],
    parent: LoadedModel | None,
) -> _Loop:
    cfg, device = session.cfg, session.device
    training = train_pieces(uses, model_config.classes, tokenizer)
    test_pieces = tokenize_split(uses[0].dataset, "test", model_config.classes, tokenizer)
    torch.manual_seed(cfg.seed)  # initial weights and dropout
    model = parent.model if parent is not None else MusicTransformer.build(model_config)
    if not isinstance(model, MusicTransformer):
        raise GenloopError(f"the music recipe cannot train a {type(model).__name__}")
    model.to(device).train()
    optimizer = build_optimizer(model.parameters(), cfg)
    steps = total_steps(cfg, batches_per_epoch=_steps_per_epoch(training, cfg, model_config))
    scheduler = build_scheduler(optimizer, cfg, total_steps=steps)
    ema = ExponentialMovingAverage(model, cfg.ema_decay) if cfg.ema_decay else None
    shift = tokenizer.pitch_shift_table(options.transpose_semitones) if options.transpose_semitones else None
    session.state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    return _Loop(
        model, optimizer, scheduler, EarlyStopping(cfg.early_stopping_patience), ema,
        training, test_pieces, shift, options, session,
    )  # fmt: skip


def _steps_per_epoch(pieces: Pieces, cfg: TrainConfig, config: MusicConfig) -> int:
    return max(1, math.ceil(pieces.total_tokens / (cfg.batch_size * config.block_size)))


# -- train -----------------------------------------------------------------------------------------


def _train(loop: _Loop, cfg: TrainConfig) -> None:
    per_epoch = _steps_per_epoch(loop.train, cfg, loop.model.config)
    steps = total_steps(cfg, batches_per_epoch=per_epoch)
    state = loop.state
    with loop.session.progress(steps) as advance:
        while state.global_step < steps and not loop.stopper.should_stop:
            epoch = state.global_step // per_epoch
            value = _step(loop, cfg)
            state.global_step += 1
            state.epoch, state.step_in_epoch = divmod(state.global_step, per_epoch)
            state.extra["epoch_loss_sum"] += value
            state.extra["epoch_batches"] += 1
            advance(1, epoch=epoch + 1, loss=f"{value:.3f}")
            if state.global_step % LOG_EVERY_STEPS == 0:
                loop.session.log(epoch=epoch, train_loss=value, lr=float(loop.scheduler.get_last_lr()[0]))
            last = state.global_step == steps
            epoch_end = state.global_step % per_epoch == 0 or last
            # evaluate every eval_every_steps (else at each epoch end), and always after the last step
            due = state.global_step % cfg.eval_every_steps == 0 if cfg.eval_every_steps else epoch_end
            _end_of_interval(loop, cfg, epoch, epoch_end=epoch_end, evaluate=due or last)
            if epoch_end or state.global_step % cfg.checkpoint_every_steps == 0 or loop.stopper.should_stop:
                loop.session.checkpoint(loop.model, loop.parts, epochs_done=state.epoch)
    if loop.stopper.should_stop:
        say(f"early stopping at step {state.global_step}: held-out loss stopped improving")


def _step(loop: _Loop, cfg: TrainConfig) -> float:
    """One optimizer step on the windows of this step; the training loss (nats per event)."""
    model, device = loop.model, loop.session.device
    inputs, targets = training_batch(
        model, loop.train, batch_size=cfg.batch_size, seed=cfg.seed, step=loop.state.global_step,
        shift_table=loop.shift_table,
    )  # fmt: skip
    model.train()
    with autocast(cfg.precision, device):
        # minimise −(1/N) Σ log p(x_{t+1} | COND, x_≤t)
        loss = model.loss(inputs.to(device), targets.to(device))
    loop.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip_gradients(model, cfg.grad_clip)
    loop.optimizer.step()
    loop.scheduler.step()
    if loop.ema is not None:
        loop.ema.update(model)
    return float(loss.detach())


def _end_of_interval(loop: _Loop, cfg: TrainConfig, epoch: int, *, epoch_end: bool, evaluate: bool) -> None:
    """The epoch's mean train loss at its end; when `evaluate`, the held-out loss (early stopping
    watches it; `epoch_heldout_loss` at an epoch end) and a MIDI sample."""
    metrics: dict[str, float] = {}
    if epoch_end:
        extra = loop.state.extra
        metrics["epoch_train_loss"] = extra["epoch_loss_sum"] / max(1.0, extra["epoch_batches"])
        extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    if evaluate and loop.test.tokens:
        heldout = heldout_loss(
            loop.evaluated_model, loop.test, loop.options.eval_windows, loop.session.device
        )
        metrics["epoch_heldout_loss" if epoch_end else "heldout_loss"] = heldout
        loop.stopper.observe(heldout)
    if metrics:
        loop.session.log(epoch=epoch, **metrics)
    if evaluate:
        _write_sample(loop, cfg)


def _write_sample(loop: _Loop, cfg: TrainConfig) -> None:
    """One MIDI piece of the first class, the same seed at every evaluation (progress is audible)."""
    model = loop.evaluated_model
    was_training = model.training
    model.eval()
    midi = model.generate_midi(1, torch.tensor([0]), seed=cfg.seed, max_tokens=loop.options.sample_tokens)[0]
    model.train(was_training)
    loop.session.write_sample(f"step-{loop.state.global_step:06d}.mid", midi)

"""DDPM training recipe: ε-prediction on labelled images, one explicit loop.

    setup    [train.model] checked against DDPMConfig (and the text encoder's package) before
             anything runs; data tensors; the model (fresh, or a parent version to fine-tune);
             AdamW + warm-up/cosine; EMA of the weights; resume from this run's newest checkpoint
    train    for each epoch: shuffle with a generator seeded by seed + epoch, and draw every
             step's noise, timesteps, dropped conditions and captions from a generator seeded
             by (seed, global step) — so a resumed run takes exactly the steps it would have;
             minimise ‖ε − ε_θ(x_t, t, c)‖², clip the gradient norm, update the EMA;
             checkpoint every `checkpoint_every_steps` steps and at each epoch end;
             held-out loss + a fixed-seed sample grid (from the EMA weights) after each epoch
    save     the EMA weights when [train].ema_decay is set, else the raw ones

Text conditioning: each image is paired, per step, with one of its class's captions
(models/captions.py: a few English and/or Chinese templates), embedded once up front by
the frozen text encoder into a (K, captions, D) table.

Image sizes: images are read at [train].image_size; the model pads them (edge pixels) to
the next multiple its UNet needs — 28 stays 28 for 3 levels (28 → 14 → 7), becomes 32 for
4 levels — and crops its samples back (DDPMConfig.fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.captions import class_captions
from genloop.models.ddpm import DDPMConfig, DiffusionModel
from genloop.models.text_encoders import check_text_encoder, text_encoder
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import Advance
from genloop.train.checkpoint import TrainerState
from genloop.train.data_order import epoch_order, step_generator
from genloop.train.device import autocast
from genloop.train.ema import ExponentialMovingAverage
from genloop.train.images import dataset_classes, grid_png, image_tensors, train_image_tensors
from genloop.train.optim import build_optimizer, build_scheduler, clip_gradients, total_steps
from genloop.train.runs import DatasetUse, TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.workspace import Workspace

FAMILY = "ddpm"
LOG_EVERY_STEPS = 5
EVAL_IMAGES = 256
"""Held-out images scored after each epoch (a fixed subset with fixed noise, so epochs compare)."""
SHARED_FIELDS = ("image_size", "channels", "classes")
"""DDPMConfig fields that come from [train] and the dataset, not from [train.model]."""

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        epochs=1, batch_size=32, learning_rate=2e-3, warmup_steps=5, lr_schedule="cosine",
        grad_clip=1.0, ema_decay=0.9, grid_per_class=2,
        model={"block_channels": [16, 32], "attention_levels": [], "train_timesteps": 200,
               "sample_steps": 10},
    ),
    "cpu": dict(  # 3 levels: 28 → 14 → 7, no padding; 1-2.5 s a step on one shared CPU core
        epochs=10, batch_size=64, learning_rate=1e-3, warmup_steps=100, lr_schedule="cosine",
        grad_clip=1.0, ema_decay=0.995, grid_per_class=8,
        model={"block_channels": [32, 64, 64], "attention_levels": [2], "sample_steps": 25},
    ),
    "gpu": dict(  # 4 levels: 28 is padded to 32 (32 → 16 → 8 → 4)
        epochs=40, batch_size=128, learning_rate=2e-4, warmup_steps=500, lr_schedule="cosine",
        grad_clip=1.0, ema_decay=0.9995, precision="bf16", grid_per_class=8,
        model={
            "block_channels": [64, 128, 256, 256], "layers_per_block": 2, "attention_levels": [2, 3],
            "sample_steps": 50,
        },
    ),
}  # fmt: skip


@dataclass
class _Loop:
    """Everything the training loop touches."""

    model: DiffusionModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: ExponentialMovingAverage | None
    train_x: torch.Tensor  # (N, C, H, W) in [0, 1], on device
    train_y: torch.Tensor  # (N,) class indices
    test_x: torch.Tensor
    test_y: torch.Tensor
    captions: torch.Tensor | None  # (K, captions per class, D) text embeddings, text conditioning only
    session: TrainingSession

    @property
    def state(self) -> TrainerState:
        return self.session.state

    @property
    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"optimizer": self.optimizer, "scheduler": self.scheduler}
        if self.ema is not None:
            parts["ema"] = self.ema
        return parts

    @property
    def final_model(self) -> DiffusionModel:
        """What is sampled from and saved: the EMA weights when kept."""
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
    model_config = model_config_for(cfg, dataset_classes(dataset), parent)  # fails before any run starts
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

    def body() -> DiffusionModel:
        loop = _setup(session, model_config, uses, parent)
        session.resume(loop.model, loop.parts)
        _train(loop, cfg)
        return loop.final_model

    return session.run(body, alias=alias, feedback_count=feedback_count)


# -- setup -----------------------------------------------------------------------------------------


def model_config_for(cfg: TrainConfig, classes: list[str], parent: LoadedModel | None) -> DDPMConfig:
    """A fresh model's config from [train] + [train.model]; a fine-tuned one keeps its parent's."""
    if parent is not None:
        if parent.family != FAMILY:
            raise GenloopError(
                f"{parent.version_id} is a {parent.family!r} model; "
                "the ddpm recipe fine-tunes ddpm models only",
                hint="fine-tune from a ddpm model version, or set [train].family to match",
            )
        config = DDPMConfig(**{k: v for k, v in parent.config.items() if k != "family"})
    else:
        known = sorted(f.name for f in fields(DDPMConfig) if f.name not in SHARED_FIELDS)
        unknown = sorted(set(cfg.model) - set(known))
        if unknown:
            raise GenloopError(
                f"[train.model] has unknown ddpm option(s) {unknown}",
                hint=f"ddpm options: {', '.join(known)} (image_size and channels are set in [train])",
            )
        try:
            config = DDPMConfig(
                image_size=cfg.image_size, channels=cfg.channels, classes=list(classes), **cfg.model
            )
        except TypeError as exc:  # a value of the wrong type that the dataclass itself trips on
            raise GenloopError(
                f"[train.model] is invalid for ddpm: {exc}", hint="check the option types"
            ) from None
    if config.conditioning == "text":
        check_text_encoder(config.text_encoder)
    return config


def _setup(
    session: TrainingSession, config: DDPMConfig, uses: Sequence[DatasetUse], parent: LoadedModel | None
) -> _Loop:
    cfg, device = session.cfg, session.device
    torch.manual_seed(cfg.seed)  # initial weights
    model = parent.model if parent is not None else DiffusionModel.build(config)
    if not isinstance(model, DiffusionModel):
        raise GenloopError(f"the ddpm recipe cannot train a {type(model).__name__}")
    model.to(device).train()
    train_x, train_y = train_image_tensors(
        uses, classes=config.classes, image_size=config.image_size, channels=config.channels
    )
    dataset = uses[0].dataset
    test_x, test_y = image_tensors(
        dataset.iter_records("test"),
        classes=config.classes,
        image_size=config.image_size,
        channels=config.channels,
        what=f"dataset {dataset.id} (test split)",
    )
    optimizer = build_optimizer(model.parameters(), cfg)
    steps = total_steps(cfg, batches_per_epoch=-(-len(train_x) // cfg.batch_size))
    scheduler = build_scheduler(optimizer, cfg, total_steps=steps)
    ema = ExponentialMovingAverage(model, cfg.ema_decay) if cfg.ema_decay else None
    captions = None
    if config.conditioning == "text":
        per_class = class_captions(config.classes, config.caption_languages)
        flat = text_encoder(config.text_encoder).encode([c for texts in per_class for c in texts])
        captions = flat.view(len(per_class), len(per_class[0]), -1).to(device)  # (K, T, D)
    session.state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    return _Loop(
        model,
        optimizer,
        scheduler,
        ema,
        train_x.to(device),
        train_y.to(device),
        test_x[:EVAL_IMAGES].to(device),
        test_y[:EVAL_IMAGES].to(device),
        captions,
        session,
    )


# -- train -----------------------------------------------------------------------------------------


def _train(loop: _Loop, cfg: TrainConfig) -> None:
    batches_per_epoch = -(-len(loop.train_x) // cfg.batch_size)
    steps = total_steps(cfg, batches_per_epoch=batches_per_epoch)
    with loop.session.progress(steps) as advance:
        for epoch in range(loop.state.epoch, cfg.epochs):
            if loop.state.global_step >= steps:
                break
            _train_epoch(loop, cfg, epoch, advance, steps)
            _end_epoch(loop, cfg, epoch)


def _condition(loop: _Loop, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
    """What a batch is conditioned on: class indices, or one random caption embedding per image."""
    if loop.model.config.conditioning == "none":
        return None
    if loop.captions is None:
        return labels
    choice = torch.randint(0, loop.captions.shape[1], (len(labels),), generator=generator).to(labels.device)
    return loop.captions[labels, choice]  # (B, D)


def _train_epoch(loop: _Loop, cfg: TrainConfig, epoch: int, advance: Advance, steps: int) -> None:
    order = epoch_order(len(loop.train_x), cfg.seed, epoch)
    batches = order.split(cfg.batch_size)
    state, model = loop.state, loop.model
    model.train()
    for index in range(state.step_in_epoch, len(batches)):  # skips the batches a resumed epoch did
        if state.global_step >= steps:
            break
        rows = batches[index].to(loop.train_x.device)
        generator = step_generator(cfg.seed, state.global_step)
        condition = _condition(loop, loop.train_y[rows], generator)
        with autocast(cfg.precision, loop.session.device):
            loss = model.loss(loop.train_x[rows], condition, generator=generator)  # ‖ε − ε_θ(x_t, t, c)‖²
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, cfg.grad_clip)
        loop.optimizer.step()
        loop.scheduler.step()
        if loop.ema is not None:
            loop.ema.update(model)
        value = float(loss.detach())
        state.global_step += 1
        state.step_in_epoch = index + 1
        state.extra["epoch_loss_sum"] += value
        state.extra["epoch_batches"] += 1
        advance(1, epoch=epoch + 1, loss=f"{value:.4f}")
        if state.global_step % LOG_EVERY_STEPS == 0:
            loop.session.log(
                epoch=epoch, train_loss=value, learning_rate=float(loop.scheduler.get_last_lr()[0])
            )
        if loop.session.checkpoint_due() and index + 1 < len(batches):
            _checkpoint(loop, epochs_done=epoch)


def _end_epoch(loop: _Loop, cfg: TrainConfig, epoch: int) -> None:
    """Held-out loss, sample grid, epoch metrics; then the epoch-end checkpoint."""
    state = loop.state
    metrics = {"epoch_train_loss": state.extra["epoch_loss_sum"] / max(1.0, state.extra["epoch_batches"])}
    if len(loop.test_x):
        metrics["epoch_heldout_loss"] = _heldout_loss(loop, cfg.seed)
    loop.session.log(epoch=epoch, **metrics)
    _write_sample_grid(loop, cfg, epoch)
    state.epoch, state.step_in_epoch = epoch + 1, 0
    state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    _checkpoint(loop, epochs_done=epoch + 1)


@torch.no_grad()
def _heldout_loss(loop: _Loop, seed: int) -> float:
    """Mean ε-prediction loss of the held-out subset (saved weights, fixed noise and captions)."""
    model = loop.final_model
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for x, y in zip(loop.test_x.split(64), loop.test_y.split(64), strict=True):
        total += float(model.loss(x, _condition(loop, y, generator), generator=generator)) * len(x)
    loop.model.train()
    return total / len(loop.test_x)


def _write_sample_grid(loop: _Loop, cfg: TrainConfig, epoch: int) -> None:
    """Rows = classes (their captions for a text model), columns = `grid_per_class`; seed = cfg.seed."""
    model = loop.final_model
    rows = max(1, len(model.classes))
    condition = torch.arange(rows).repeat_interleave(cfg.grid_per_class)  # (K · columns,)
    model.eval()
    images = model.sample(len(condition), condition, seed=cfg.seed)  # (K · columns, C, H, W)
    loop.model.train()
    loop.session.write_sample(f"epoch-{epoch + 1:03d}.png", grid_png(images, columns=cfg.grid_per_class))


def _checkpoint(loop: _Loop, *, epochs_done: int) -> None:
    loop.session.checkpoint(loop.model, loop.parts, epochs_done=epochs_done)

"""GAN training recipe: DCGAN's alternating updates (Radford et al. 2016), one explicit loop.

    setup    image tensors (train split, scaled to [−1, 1]) pre-loaded on the device; the model
             (fresh, or a parent version to fine-tune); Adam(β₁ = 0.5) + LR schedule for G and
             for D; an EMA of G when `ema_decay` is set; resume from this run's newest checkpoint
    train    for each epoch: shuffle with a generator seeded by seed + epoch (a resumed epoch sees
             the same batches); per batch one D update then one G update (`AdversarialStep`);
             checkpoint every `checkpoint_every_steps` steps and at each epoch end; a sample grid
             from fixed noise (seed = cfg.seed) after each epoch
    save     the model version holds G (the EMA generator when `ema_decay` is set) and D
    cleanup  mark the run completed (or failed, on any error)

[train.model] options: conditioning = "none" | "concat" | "projection" (default: "projection"
when the dataset has labels, else "none"), loss = "nonsaturating" | "hinge", spectral_norm,
and channels_last (a loop option, not saved with the model). Set learning_rate = 2e-4
(DCGAN's; the presets do) — [train]'s default 2e-3 is the VAE's.

Speed: fused Adam; D's weight gradients are not computed in the G update (only G's are
needed: `backward(inputs=G's parameters)`); channels_last, `compile` and bf16 `precision`
are options. Measured on a 2-core AVX-512-BF16 CPU, 1 thread (benchmarks/train_gan_throughput.py):
vs a pytorch/examples-style loop, fp32 1.08×, + channels_last 1.20×, bf16 1.54×, both 1.70×
(the cpu preset), torch.compile 1.07× after ~150 s of compiling (left off).

Data parallel (`genloop train --launcher torchrun --num-processes N`): the recipe re-launches
itself in N processes. Every rank draws the whole batch's noise z from the same seeded stream
(so the union of the shards is the one-process batch, images and z alike), trains G and D
on its shard through DistributedDataParallel (gradients averaged over ranks), and rank 0
alone writes checkpoints, metrics and sample grids (see `genloop.train.distributed`).
BatchNorm stays per rank: each rank normalises with its shard's statistics (B/N rows),
not the whole batch's — SyncBatchNorm would match one process exactly, but PyTorch runs it
on accelerators only (not on CPU/gloo), and DCGAN already normalises real and fake
batches apart. Measured against one process (2 ranks, ~330 digits, 1 epoch at batch 16 or
64): the weights' change differs by 15 % of its size (a different seed: 140 %), epoch losses by
0.2 %; tests/train/test_distributed_families.py checks the exact per-shard equivalence. DDP
broadcasts rank 0's running statistics, which the sample grids and the saved model use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.gan import (
    DCGAN,
    UNCONDITIONAL_CLASS,
    GANConfig,
    Generator,
    discriminator_loss,
    generator_loss,
    sample_images,
)
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import Advance, say
from genloop.train.checkpoint import TrainerState
from genloop.train.data_order import epoch_order
from genloop.train.device import autocast
from genloop.train.distributed import (
    all_reduce_row_means,
    is_distributed,
    is_main_process,
    shard_batch,
    shard_loss_scale,
)
from genloop.train.ema import ExponentialMovingAverage
from genloop.train.images import dataset_classes, grid_png, train_image_tensors
from genloop.train.launch import launch_training, relaunch_requested
from genloop.train.optim import build_optimizer, build_scheduler, clip_gradients, total_steps
from genloop.train.runs import DatasetUse, TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.workspace import Workspace

FAMILY = "gan"
DATA_PARALLEL = True
"""`genloop train --launcher …` runs this recipe in several processes (see genloop.train.launch)."""
LOG_EVERY_STEPS = 5
MODEL_OPTIONS = ("conditioning", "loss", "spectral_norm")
RECIPE_OPTIONS = ("channels_last",)
"""[train.model] options of the loop rather than the architecture (not saved with the model)."""
METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy")
BETAS = (0.5, 0.999)  # DCGAN: β₁ = 0.5 steadies the alternating updates

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 1, "batch_size": 32, "latent_dim": 16, "hidden_channels": 8, "learning_rate": 2e-4},
    "cpu": {
        "epochs": 5,
        "batch_size": 64,
        "latent_dim": 64,
        "hidden_channels": 32,
        "learning_rate": 2e-4,
        "ema_decay": 0.999,
        # measured fastest on an AVX-512-BF16 CPU (benchmarks/train_gan_throughput.py): 1.7× fp32
        "precision": "bf16",
        "model": {"channels_last": True},
    },
    "gpu": {
        "epochs": 25,
        "batch_size": 128,
        "latent_dim": 100,
        "hidden_channels": 64,
        "learning_rate": 2e-4,
        "ema_decay": 0.999,
        "precision": "bf16",
        "model": {"channels_last": True},
    },
}


@dataclass
class _Loop:
    """Everything the training loop touches."""

    model: DCGAN
    step: AdversarialStep
    train_x: torch.Tensor  # (N, C, H, W) in [−1, 1], on device
    train_y: torch.Tensor  # (N,) class indices (all 0 for an unconditional model)
    session: TrainingSession

    @property
    def state(self) -> TrainerState:
        return self.session.state


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
    model_config = _model_config(cfg, dataset, parent)  # every config problem surfaces here
    plan = relaunch_requested()  # after the checks: bad options fail before any process starts
    if plan is not None:
        return launch_training(
            plan,
            workspace,
            catalog,
            dataset,
            cfg,
            model_name=model_name,
            init_from=init_from,
            extra_datasets=extra_datasets,
            alias=alias,
            feedback_count=feedback_count,
        )
    if "learning_rate" not in cfg.model_fields_set and cfg.preset is None and is_main_process():
        say(f"[yellow]gan: learning_rate {cfg.learning_rate:g}; DCGAN uses 2e-4 (the presets do)[/yellow]")
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

    def body() -> DCGAN:
        loop = _setup(session, model_config, uses, parent)
        session.resume(loop.model, loop.step.parts)
        _train(loop, cfg)
        return loop.step.model_to_save()

    return session.run(body, alias=alias, feedback_count=feedback_count)


class AdversarialStep:
    """One DCGAN update on a batch, in the paper's order: D, then G; plus the EMA of G.

    Holds both optimizers, their LR schedules and the EMA (`parts`, the checkpoint's state).
    The benchmark drives this same object, so what it measures is what the recipe runs.
    """

    def __init__(
        self,
        model: DCGAN,
        cfg: TrainConfig,
        *,
        total_steps: int,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.model, self.total_steps, self.memory_format = model, total_steps, memory_format
        self.loss_kind, self.grad_clip, self.precision = model.config.loss, cfg.grad_clip, cfg.precision
        self.device = next(model.parameters()).device
        self.g_params = [p for p in model.generator.parameters() if p.requires_grad]
        self.g_optimizer = build_optimizer(self.g_params, cfg, betas=BETAS)
        self.d_optimizer = build_optimizer(model.discriminator.parameters(), cfg, betas=BETAS)
        self.g_scheduler = build_scheduler(self.g_optimizer, cfg, total_steps=total_steps)
        self.d_scheduler = build_scheduler(self.d_optimizer, cfg, total_steps=total_steps)
        self.ema = ExponentialMovingAverage(model.generator, cfg.ema_decay) if cfg.ema_decay else None
        # compiled / DDP wrappers share the modules' parameters; the modules themselves are what is saved
        self.replicated = is_distributed()
        generator: nn.Module = (
            DistributedDataParallel(model.generator) if self.replicated else model.generator
        )
        self.generator: Any = torch.compile(generator) if cfg.compile else generator
        self.discriminator: Any = torch.compile(model.discriminator) if cfg.compile else model.discriminator
        # D's update scores real and fake in one forward pass: DDP expects one forward per backward
        both = _RealAndFakeLogits(self.discriminator)
        self.real_and_fake: nn.Module = DistributedDataParallel(both) if self.replicated else both

    @property
    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
            "g_scheduler": self.g_scheduler,
            "d_scheduler": self.d_scheduler,
        }
        if self.ema is not None:
            parts["ema"] = self.ema
        return parts

    def __call__(
        self, real: torch.Tensor, y: torch.Tensor, *, z: torch.Tensor | None = None, loss_scale: float = 1.0
    ) -> dict[str, torch.Tensor]:
        """real (B, C, H, W) in [−1, 1], y (B,) → detached metrics of this step.

        In several processes `real`, `y` and the noise `z` (B, Z) are this rank's shard of the
        batch, and `loss_scale` (`shard_loss_scale`) makes DDP's gradient average the batch mean.
        """
        labels = y if self.model.config.conditional else None
        real = real.contiguous(memory_format=self.memory_format)  # row indexing returns NCHW
        if z is None:
            z = torch.randn(len(real), self.model.config.latent_dim, device=self.device)  # (B, Z)
        # (1) update D: maximise log D(x) + log(1 − D(G(z)))   [hinge: E relu(1 − D(x)) + relu(1 + D(G(z)))]
        with autocast(self.precision, self.device):
            fake = self.generator(z, labels).contiguous(memory_format=self.memory_format)  # (B, C, H, W)
            real_logits, fake_logits = self.real_and_fake(real, fake.detach(), labels)  # (B,) each
        d_loss = discriminator_loss(real_logits, fake_logits, self.loss_kind)
        self.d_optimizer.zero_grad(set_to_none=True)
        (d_loss * loss_scale if loss_scale != 1.0 else d_loss).backward()  # DDP averages D's gradients
        clip_gradients(self.model.discriminator, self.grad_clip)
        self.d_optimizer.step()
        # (2) update G: maximise log D(G(z)) (non-saturating)   [hinge: maximise D(G(z))]
        with autocast(self.precision, self.device):
            g_logits = self.discriminator(fake, labels)  # D itself, not DDP's: no D gradients to average
        g_loss = generator_loss(g_logits, self.loss_kind)
        self.g_optimizer.zero_grad(set_to_none=True)
        # D's weight gradients are not needed: skip them; DDP averages G's
        (g_loss * loss_scale if loss_scale != 1.0 else g_loss).backward(inputs=self.g_params)
        clip_gradients(self.model.generator, self.grad_clip)
        self.g_optimizer.step()
        self.g_scheduler.step()
        self.d_scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model.generator)
        real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
        return {
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "d_real": torch.sigmoid(real_logits).mean(),  # D(x)
            "d_fake": torch.sigmoid(fake_logits).mean(),  # D(G(z)), before D's update
            "d_accuracy": 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()),
        }

    def sampling_generator(self) -> Generator:
        """The generator samples come from: the EMA one when there is one."""
        return self.ema.model if self.ema is not None else self.model.generator  # type: ignore[return-value]

    def model_to_save(self) -> DCGAN:
        """The model, with the EMA generator's weights in place of the raw ones when EMA is on."""
        if self.ema is not None:
            self.model.generator.load_state_dict(self.ema.model.state_dict())
        return self.model


class _RealAndFakeLogits(nn.Module):
    """D(x) and D(G(z)) as one forward pass (DDP synchronises what runs through one forward);
    two calls of D, as one process makes them, so BatchNorm sees real and fake batches apart."""

    def __init__(self, discriminator: Any) -> None:  # D, or its torch.compile'd form (a Module too)
        super().__init__()
        self.discriminator = discriminator

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.discriminator(real, labels), self.discriminator(fake, labels)


# -- setup -----------------------------------------------------------------------------------------


def _model_config(cfg: TrainConfig, dataset: DatasetHandle, parent: LoadedModel | None) -> GANConfig:
    """A fresh model's config from [train] and [train.model]; a fine-tuned one keeps its parent's."""
    known = {*MODEL_OPTIONS, *RECIPE_OPTIONS}
    unknown = sorted(set(cfg.model) - known)
    if unknown:
        raise GenloopError(
            f"[train.model] has option(s) {unknown} that the gan family does not know",
            hint=f"gan options: {', '.join(sorted(known))}",
        )
    if not isinstance(cfg.model.get("channels_last", False), bool):
        raise GenloopError(
            f"[train.model] channels_last must be true or false (got {cfg.model['channels_last']!r})"
        )
    if parent is not None:
        if parent.family != FAMILY:
            raise GenloopError(
                f"{parent.version_id} is a {parent.family!r} model; the gan recipe fine-tunes gan models",
                hint="fine-tune from a gan model version, or set [train].family to match",
            )
        return GANConfig(**{k: v for k, v in parent.config.items() if k != "family"})
    classes = dataset_classes(dataset)
    options = {k: v for k, v in cfg.model.items() if k in MODEL_OPTIONS}
    options.setdefault("conditioning", "projection" if classes else "none")
    return GANConfig(
        image_size=cfg.image_size,
        channels=cfg.channels,
        classes=classes if options["conditioning"] != "none" else [],
        latent_dim=cfg.latent_dim,
        hidden_channels=cfg.hidden_channels,
        **options,
    )


def _setup(
    session: TrainingSession, model_config: GANConfig, uses: Sequence[DatasetUse], parent: LoadedModel | None
) -> _Loop:
    cfg, device = session.cfg, session.device
    torch.manual_seed(cfg.seed)  # initial weights; the noise z of every step follows from it
    model = parent.model if parent is not None else DCGAN.build(model_config)
    if not isinstance(model, DCGAN):
        raise GenloopError(f"the gan recipe cannot train a {type(model).__name__}")
    train_x, train_y = train_image_tensors(
        uses,
        classes=model_config.classes,
        image_size=model_config.image_size,
        channels=model_config.channels,
        relabel=None if model_config.conditional else UNCONDITIONAL_CLASS,  # one class: labels play no part
    )
    memory_format = torch.channels_last if cfg.model.get("channels_last") else torch.contiguous_format
    model.to(device).train()
    model.to(memory_format=memory_format)  # type: ignore[call-overload]  # missing from torch's stubs
    batches_per_epoch = -(-len(train_x) // cfg.batch_size)
    steps = total_steps(cfg, batches_per_epoch=batches_per_epoch)
    step = AdversarialStep(model, cfg, total_steps=steps, memory_format=memory_format)
    session.state.extra.update({f"epoch_{name}_sum": 0.0 for name in METRICS}, epoch_batches=0.0)
    train_x = train_x.mul(2.0).sub(1.0).to(device).contiguous(memory_format=memory_format)  # [0, 1] → [−1, 1]
    return _Loop(model, step, train_x, train_y.to(device), session)


# -- train -----------------------------------------------------------------------------------------


def _train(loop: _Loop, cfg: TrainConfig) -> None:
    if loop.state.global_step >= loop.step.total_steps:  # killed after the last checkpoint, before saving
        return
    with loop.session.progress(loop.step.total_steps) as advance:
        for epoch in range(loop.state.epoch, cfg.epochs):
            if _train_epoch(loop, cfg, epoch, advance):
                return


def _train_epoch(loop: _Loop, cfg: TrainConfig, epoch: int, advance: Advance) -> bool:
    """One epoch (or the rest of a resumed one); True when `max_steps` ended the run."""
    order = epoch_order(len(loop.train_x), cfg.seed, epoch)
    batches = order.split(cfg.batch_size)
    state, extra = loop.state, loop.state.extra
    for index in range(state.step_in_epoch, len(batches)):  # skips the batches a resumed epoch did
        rows = batches[index].to(loop.train_x.device)
        if loop.step.replicated:
            metrics = _replica_step(loop, rows)
        else:
            metrics = {k: float(v) for k, v in loop.step(loop.train_x[rows], loop.train_y[rows]).items()}
        state.global_step += 1
        state.step_in_epoch = index + 1
        for name in METRICS:
            extra[f"epoch_{name}_sum"] += metrics[name]
        extra["epoch_batches"] += 1
        advance(1, epoch=epoch + 1, d=f"{metrics['d_loss']:.2f}", g=f"{metrics['g_loss']:.2f}")
        if state.global_step % LOG_EVERY_STEPS == 0:
            loop.session.log(epoch=epoch, **metrics)
        last = state.global_step >= loop.step.total_steps
        if last or index + 1 == len(batches):
            _end_epoch(loop, cfg, epoch, finished=index + 1 == len(batches))
            return last
        if loop.session.checkpoint_due():
            _checkpoint(loop, epochs_done=epoch)
    return False


def _replica_step(loop: _Loop, batch_rows: torch.Tensor) -> dict[str, float]:
    """This rank's share of one step; the whole batch's metrics (row-weighted means over ranks).

    Every rank draws the whole batch's noise from the same stream (seeded alike, restored
    alike on resume) and keeps its shard's rows, so the shards together are one process's batch.
    """
    z = torch.randn(len(batch_rows), loop.model.config.latent_dim, device=loop.step.device)  # (B, Z)
    shard = shard_batch(torch.arange(len(batch_rows), device=batch_rows.device))  # positions in the batch
    scale = shard_loss_scale(len(shard), len(batch_rows))
    if len(shard) == 0:  # a batch smaller than the world: a zero-weight row keeps DDP in step
        shard, scale = shard.new_zeros(1), 0.0
    rows = batch_rows[shard]
    metrics = loop.step(loop.train_x[rows], loop.train_y[rows], z=z[shard], loss_scale=scale)
    means = torch.stack([metrics[name].float() for name in METRICS])  # (K,) this shard's
    means = all_reduce_row_means(means, float(len(shard)) if scale else 0.0)  # (K,) the batch's
    return dict(zip(METRICS, means.tolist(), strict=True))


def _end_epoch(loop: _Loop, cfg: TrainConfig, epoch: int, *, finished: bool) -> None:
    """Epoch means, sample grid; then the epoch-end (or final) checkpoint."""
    state, extra = loop.state, loop.state.extra
    batches = max(1.0, extra["epoch_batches"])
    loop.session.log(
        epoch=epoch, **{f"epoch_{name}": extra[f"epoch_{name}_sum"] / batches for name in METRICS}
    )
    if loop.session.is_main:  # the other ranks wait at the checkpoint's barrier
        _write_sample_grid(loop, cfg, epoch)
    if finished:
        state.epoch, state.step_in_epoch = epoch + 1, 0
        extra.update({f"epoch_{name}_sum": 0.0 for name in METRICS}, epoch_batches=0.0)
    _checkpoint(loop, epochs_done=state.epoch)


def _write_sample_grid(loop: _Loop, cfg: TrainConfig, epoch: int) -> None:
    """Fixed noise (seed = cfg.seed): rows = classes × `grid_per_class` columns (unconditional: a square)."""
    config = loop.model.config
    columns = cfg.grid_per_class
    if config.conditional:
        labels = torch.arange(len(config.classes)).repeat_interleave(columns)  # (K · columns,)
    else:
        labels = torch.zeros(columns * columns, dtype=torch.long)
    images = sample_images(loop.step.sampling_generator(), config, len(labels), labels, seed=cfg.seed)
    loop.session.write_sample(f"epoch-{epoch + 1:03d}.png", grid_png(images, columns=columns))


def _checkpoint(loop: _Loop, *, epochs_done: int) -> None:
    loop.session.checkpoint(loop.model, loop.step.parts, epochs_done=epochs_done)

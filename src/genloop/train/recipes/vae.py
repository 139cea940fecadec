"""VAE training recipe: maximise the ELBO of a class- or text-conditional VAE, one explicit loop.

    setup    data tensors, model (fresh, or a parent version to fine-tune), Adam; resume
             from the newest checkpoint of this run when there is one
    train    for each epoch: shuffle with a generator seeded by seed + epoch (so a resumed
             epoch sees the same batches), minimise recon + β·KL = −ELBO_β per image,
             checkpoint every `checkpoint_every_steps` steps and at each epoch end,
             held-out loss + a fixed-noise sample grid after each epoch
    save     register the model version (and alias) in the catalog
    cleanup  mark the run completed (or failed, on any error)

Text conditioning ([train.model] conditioning = "text", text_encoder, caption_languages,
condition_dim): each image is paired, per step, with one random caption of its label
(models/captions.py), drawn from a generator seeded by (seed, global step) so a resumed
run — or every rank of a data-parallel one — draws the same captions; the captions are
embedded once up front by the frozen text encoder into a (K, captions, D) table.

Data parallel (`genloop train --launcher torchrun --num-processes N`): the recipe
re-launches itself in N processes; each trains on its shard of every batch through
DistributedDataParallel (gradients averaged over ranks), rank 0 alone evaluates, writes
samples, checkpoints and catalog rows (see `genloop.train.distributed`).

Everything a run writes lives in `.genloop/runs/RUN_ID/`: config.json, checkpoints/,
samples/epoch-001.png, model/.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.captions import class_captions
from genloop.models.text_encoders import check_text_encoder, text_encoder
from genloop.models.vae import TEXT_FIELDS, ConditionalVAE, VAEConfig
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import Advance
from genloop.train.checkpoint import TrainerState
from genloop.train.data_order import epoch_order, step_generator
from genloop.train.distributed import (
    all_reduce_mean,
    is_distributed,
    rank_generator,
    shard_batch,
    shard_loss_scale,
)
from genloop.train.images import dataset_classes, grid_png, image_tensors, train_image_tensors
from genloop.train.launch import launch_training, relaunch_requested
from genloop.train.runs import DatasetUse, TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.workspace import Workspace

FAMILY = "vae"
DATA_PARALLEL = True
"""`genloop train --launcher …` runs this recipe in several processes (see genloop.train.launch)."""
LOG_EVERY_STEPS = 5
EVAL_BATCH = 512
MODEL_OPTIONS = (*TEXT_FIELDS, "likelihood")
"""VAEConfig fields set in [train.model]; the others come from [train] and the dataset."""

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 1, "batch_size": 32, "latent_dim": 4, "hidden_channels": 8},
    "cpu": {"epochs": 5, "batch_size": 128, "latent_dim": 16, "hidden_channels": 32},
    "gpu": {"epochs": 40, "batch_size": 256, "latent_dim": 32, "hidden_channels": 64, "learning_rate": 1e-3},
}


@dataclass
class _Loop:
    """Everything the training loop touches."""

    model: ConditionalVAE
    optimizer: torch.optim.Optimizer
    train_x: torch.Tensor  # (N, C, H, W) in [0, 1], on device
    train_y: torch.Tensor  # (N,) class indices
    test_x: torch.Tensor
    test_y: torch.Tensor
    captions: torch.Tensor | None  # (K, captions per class, D) text embeddings, text conditioning only
    session: TrainingSession
    replicas: nn.Module | None = None
    """The loss wrapped in DistributedDataParallel when training in several processes."""

    @property
    def state(self) -> TrainerState:
        return self.session.state

    @property
    def parts(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer}


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
    plan = relaunch_requested()
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
    parent = load_model_version(workspace, catalog, init_from) if init_from else None
    uses = dataset_uses(dataset, extra_datasets)
    model_config = _model_config(cfg, dataset, parent)
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

    def body() -> ConditionalVAE:
        loop = _setup(session, model_config, uses, parent)
        session.resume(loop.model, loop.parts)
        _train(loop, cfg)
        return loop.model

    return session.run(body, alias=alias, feedback_count=feedback_count)


# -- setup -----------------------------------------------------------------------------------------


def _model_config(cfg: TrainConfig, dataset: DatasetHandle, parent: LoadedModel | None) -> VAEConfig:
    """A fresh model's config from [train] + [train.model]; a fine-tuned one keeps its parent's."""
    if parent is None:
        config = _fresh_config(cfg, dataset_classes(dataset))
    elif parent.family != FAMILY:
        raise GenloopError(
            f"{parent.version_id} is a {parent.family!r} model; the vae recipe fine-tunes vae models only",
            hint="fine-tune from a vae model version, or set [train].family to match",
        )
    else:
        config = VAEConfig(**{k: v for k, v in parent.config.items() if k != "family"})
    if config.conditioning == "text":
        check_text_encoder(config.text_encoder)  # before any training starts
    return config


def _fresh_config(cfg: TrainConfig, classes: list[str]) -> VAEConfig:
    unknown = sorted(set(cfg.model) - set(MODEL_OPTIONS))
    if unknown:
        shared = sorted(f.name for f in fields(VAEConfig) if f.name not in MODEL_OPTIONS)
        raise GenloopError(
            f"[train.model] has unknown vae option(s) {unknown}",
            hint=f"vae options: {', '.join(MODEL_OPTIONS)} ({', '.join(shared)} are set in [train])",
        )
    try:
        return VAEConfig(
            image_size=cfg.image_size,
            channels=cfg.channels,
            classes=classes,
            latent_dim=cfg.latent_dim,
            hidden_channels=cfg.hidden_channels,
            beta=cfg.beta,
            **cfg.model,
        )
    except TypeError as exc:  # a value of the wrong type that the dataclass itself trips on
        raise GenloopError(
            f"[train.model] is invalid for vae: {exc}", hint="check the option types"
        ) from None


def _setup(
    session: TrainingSession, model_config: VAEConfig, uses: Sequence[DatasetUse], parent: LoadedModel | None
) -> _Loop:
    cfg, device = session.cfg, session.device
    torch.manual_seed(cfg.seed)  # initial weights and the reparameterisation noise
    model = parent.model if parent is not None else ConditionalVAE.build(model_config)
    if not isinstance(model, ConditionalVAE):
        raise GenloopError(f"the vae recipe cannot train a {type(model).__name__}")
    train_x, train_y = train_image_tensors(
        uses,
        classes=model_config.classes,
        image_size=model_config.image_size,
        channels=model_config.channels,
    )
    if parent is None:
        model.init_output_bias(train_x, train_y)  # start from the class means (see ConditionalVAE)
    model.to(device).train()
    dataset = uses[0].dataset
    test_x, test_y = image_tensors(
        dataset.iter_records("test"),
        classes=model_config.classes,
        image_size=model_config.image_size,
        channels=model_config.channels,
        what=f"dataset {dataset.id} (test split)",
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    captions = None
    if model_config.conditioning == "text":
        per_class = class_captions(model_config.classes, model_config.caption_languages)
        flat = text_encoder(model_config.text_encoder).encode([c for texts in per_class for c in texts])
        captions = flat.view(len(per_class), len(per_class[0]), -1).to(device)  # (K, T, D)
    session.state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    return _Loop(
        model,
        optimizer,
        train_x.to(device),
        train_y.to(device),
        test_x.to(device),
        test_y.to(device),
        captions,
        session,
        DistributedDataParallel(_ShardLoss(model)) if is_distributed() else None,
    )


class _ShardLoss(nn.Module):
    """`model.loss` as a forward pass: DDP synchronises gradients of what runs through forward."""

    def __init__(self, model: ConditionalVAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        return self.model.loss(x, y, generator=generator)


# -- train -----------------------------------------------------------------------------------------


def _train(loop: _Loop, cfg: TrainConfig) -> None:
    batches_per_epoch = -(-len(loop.train_x) // cfg.batch_size)
    with loop.session.progress(cfg.epochs * batches_per_epoch) as advance:
        for epoch in range(loop.state.epoch, cfg.epochs):
            _train_epoch(loop, cfg, epoch, advance)
            _end_epoch(loop, cfg, epoch)


def _train_epoch(loop: _Loop, cfg: TrainConfig, epoch: int, advance: Advance) -> None:
    order = epoch_order(len(loop.train_x), cfg.seed, epoch)
    batches = order.split(cfg.batch_size)
    state, model = loop.state, loop.model
    model.train()
    for index in range(state.step_in_epoch, len(batches)):  # skips the batches a resumed epoch did
        rows = batches[index].to(loop.train_x.device)
        condition = _condition(loop, loop.train_y[rows], seed=cfg.seed)  # (B,) labels or (B, D) captions
        loop.optimizer.zero_grad(set_to_none=True)
        if loop.replicas is None:
            # maximise ELBO = E_q[log p(x|z,y)] − KL(q(z|x,y) ‖ p(z|y)): minimise recon + β·KL
            losses = model.loss(loop.train_x[rows], condition)
            losses["loss"].backward()
            loss = float(losses["loss"].detach())
        else:
            loss = _replica_backward(loop, rows, condition, seed=cfg.seed)
        loop.optimizer.step()
        state.global_step += 1
        state.step_in_epoch = index + 1
        state.extra["epoch_loss_sum"] += loss
        state.extra["epoch_batches"] += 1
        advance(1, epoch=epoch + 1, loss=f"{loss:.1f}")
        if state.global_step % LOG_EVERY_STEPS == 0:
            loop.session.log(epoch=epoch, train_loss=loss)
        if state.global_step % cfg.checkpoint_every_steps == 0 and index + 1 < len(batches):
            _checkpoint(loop, epochs_done=epoch)


def _condition(loop: _Loop, labels: torch.Tensor, *, seed: int) -> torch.Tensor:
    """What a batch is conditioned on: its class indices, or one random caption embedding per image."""
    if loop.captions is None:
        return labels
    return draw_captions(loop.captions, labels, seed=seed, step=loop.state.global_step)


def draw_captions(captions: torch.Tensor, labels: torch.Tensor, *, seed: int, step: int) -> torch.Tensor:
    """One random caption embedding of its class per label: captions (K, T, D), labels (B,) → (B, D).

    The choice comes from a generator seeded by (seed, global step) alone: a resumed step,
    and every rank of a data-parallel step, draws the same captions for the whole batch.
    """
    generator = step_generator(seed, step)
    choice = torch.randint(0, captions.shape[1], (len(labels),), generator=generator)
    return captions[labels, choice.to(labels.device)]


def _replica_backward(
    loop: _Loop, batch_rows: torch.Tensor, batch_condition: torch.Tensor, *, seed: int
) -> float:
    """This rank's share of one step: backward of its shard's loss; the whole batch's mean loss.

    Each rank draws its posterior noise from `rank_generator(seed, step)`: independent
    between ranks, and the same again when a step is redone after a resume.
    """
    assert loop.replicas is not None
    rows, condition = shard_batch(batch_rows), shard_batch(batch_condition)  # the same slice of each
    scale = shard_loss_scale(len(rows), len(batch_rows))
    if len(rows) == 0:  # a batch smaller than the world: a zero-weight row keeps DDP in step
        rows, condition, scale = batch_rows[:1], batch_condition[:1], 0.0
    noise = rank_generator(seed, loop.state.global_step, loop.train_x.device)
    losses = loop.replicas(loop.train_x[rows], condition, noise)
    (losses["loss"] * scale).backward()  # DDP all-reduces (averages) the gradients here
    return all_reduce_mean(float(losses["loss"].detach()), weight=len(rows) if scale else 0.0)


def _end_epoch(loop: _Loop, cfg: TrainConfig, epoch: int) -> None:
    """Held-out loss, sample grid, epoch metrics; then the epoch-end checkpoint."""
    state = loop.state
    metrics = {"epoch_train_loss": state.extra["epoch_loss_sum"] / max(1.0, state.extra["epoch_batches"])}
    if loop.session.is_main:  # the other ranks wait at the checkpoint's barrier
        if len(loop.test_x):
            metrics.update({f"epoch_heldout_{k}": v for k, v in _heldout_losses(loop, cfg.seed).items()})
        loop.session.log(epoch=epoch, **metrics)
        _write_sample_grid(loop, cfg, epoch)
        loop.session.epoch_end(epoch, metrics)  # hooks (e.g. the tuner's pruning) see the metrics
    state.epoch, state.step_in_epoch = epoch + 1, 0
    state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    _checkpoint(loop, epochs_done=epoch + 1)


@torch.no_grad()
def _heldout_losses(loop: _Loop, seed: int) -> dict[str, float]:
    """Mean held-out loss, recon and KL per image; fixed posterior noise so epochs compare.

    A text model is conditioned on each class's plain caption (the first of its captions).
    """
    loop.model.eval()
    generator = torch.Generator(device=loop.test_x.device).manual_seed(seed)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    for x, y in zip(loop.test_x.split(EVAL_BATCH), loop.test_y.split(EVAL_BATCH), strict=True):
        condition = y if loop.captions is None else loop.captions[y, 0]
        for name, value in loop.model.loss(x, condition, generator=generator).items():
            totals[name] += float(value) * len(x)
    loop.model.train()
    return {name: total / len(loop.test_x) for name, total in totals.items()}


def _write_sample_grid(loop: _Loop, cfg: TrainConfig, epoch: int) -> None:
    """Rows = classes (their plain captions for a text model), columns = `grid_per_class`; the same
    noise every epoch (seed = cfg.seed)."""
    classes = len(loop.model.classes)
    condition = torch.arange(classes).repeat_interleave(cfg.grid_per_class)  # (K · columns,)
    loop.model.eval()
    images = loop.model.sample(len(condition), condition, seed=cfg.seed)  # (K · columns, C, H, W)
    loop.model.train()
    loop.session.write_sample(f"epoch-{epoch + 1:03d}.png", grid_png(images, columns=cfg.grid_per_class))


def _checkpoint(loop: _Loop, *, epochs_done: int) -> None:
    loop.session.checkpoint(loop.model, loop.parts, epochs_done=epochs_done)

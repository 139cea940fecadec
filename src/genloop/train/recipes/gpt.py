"""GPT training recipe: next-token cross-entropy on random contiguous blocks, one explicit loop.

    setup    [train.model] checked (before anything else), the tokenizer trained on the train
             split (char or byte-level BPE; a fine-tuned model keeps its parent's), both splits
             encoded to token streams, the model, AdamW + warm-up/cosine, early stopping;
             resume from this run's newest checkpoint, refusing one made with another tokenizer
    train    step s draws `batch_size` blocks at random offsets with a generator seeded by
             (seed, s), so the data position is the step itself and a resumed run sees the
             same batches; minimise the mean NLL of the next token, clip the gradient norm;
             every `eval_every_steps` (default: once per pass over the train tokens) the
             held-out loss (nats/token, and bits/char for the char tokenizer), a text sample
             in runs/RUN_ID/samples/step-NNNNNN.txt, early stopping; checkpoints every
             `checkpoint_every_steps`, at each evaluation and at the end
    save     register the model version (weights, config.json, tokenizer)

An "epoch" here is one pass worth of train tokens: ceil(train tokens / (batch · block)) steps;
`max_steps` caps the run (and the cosine schedule spans what remains).

Data parallel (`genloop train --launcher torchrun --num-processes N`): the recipe re-launches
itself in N processes. Each rank draws the step's block offsets from the same (seed, step)
generator and builds only its own rows (`shard_batch`), so the ranks' rows together are the
one-process batch; DistributedDataParallel averages the gradients (the shard loss scaled by
`shard_loss_scale`), so the update is one process's up to float summation order. Dropout
noise is drawn per (seed, step, rank). Rank 0 alone evaluates and writes samples,
checkpoints and metrics; the held-out loss reaches every rank, so all stop early together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.gpt import GPT, GPTConfig, saved_tokenizer_fingerprint
from genloop.models.tokenizers import TextTokenizer, train_tokenizer
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import say
from genloop.train.checkpoint import latest_checkpoint
from genloop.train.data_order import step_generator
from genloop.train.device import autocast
from genloop.train.distributed import (
    all_reduce_row_means,
    broadcast_from_main,
    is_distributed,
    rank_generator,
    shard_batch,
    shard_loss_scale,
)
from genloop.train.early_stopping import EarlyStopping
from genloop.train.launch import launch_training, relaunch_requested
from genloop.train.optim import build_optimizer, build_scheduler, total_steps
from genloop.train.runs import TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.train.text import TokenStreams, record_texts, token_streams, train_texts
from genloop.workspace import Workspace

FAMILY = "gpt"
DATA_PARALLEL = True
"""`genloop train --launcher …` runs this recipe in several processes (see genloop.train.launch)."""
LOG_EVERY_STEPS = 10
EVAL_MAX_BLOCKS = 256
"""Held-out blocks per evaluation (fixed, evenly spaced: every evaluation scores the same text)."""
EVAL_BATCH = 64
SAMPLE_TEXTS, SAMPLE_TOKENS = 2, 200
BETAS = (0.9, 0.99)  # β₂ = 0.99: small models on small data see few tokens per step (nanoGPT)

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # seconds: a smoke test of the whole loop
        "epochs": 1000,
        "max_steps": 30,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "eval_every_steps": 15,
        "checkpoint_every_steps": 15,
        "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32},
    },
    "cpu": {  # nanoGPT's "baby" char model on a laptop CPU (minutes)
        "epochs": 100,
        "max_steps": 2000,
        "batch_size": 12,
        # nanoGPT uses 1e-3; at a fixed budget of 1,090 steps on Shakespeare (bf16, 2 shared cores)
        # held-out loss was 2.068 at 1e-3, 1.938 at 2e-3, 1.879 at 3e-3, 1.860 at 5e-3, 1.849 at 8e-3
        "learning_rate": 5e-3,
        # bf16 autocast: 1.27× the fp32 reference's step rate on 2 idle cores (fp32: 1.10×);
        # val loss 1.687 at a 100 s budget vs the reference's 1.792 (docs/benchmarks.md)
        "precision": "bf16",
        "weight_decay": 0.1,
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "min_lr_ratio": 0.1,
        "grad_clip": 1.0,
        "eval_every_steps": 250,
        "checkpoint_every_steps": 250,
        "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0},
    },
    "gpu": {  # nanoGPT's shakespeare-char model (a few minutes on one GPU)
        "epochs": 1000,
        "max_steps": 5000,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "weight_decay": 0.1,
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "min_lr_ratio": 0.1,
        "grad_clip": 1.0,
        "eval_every_steps": 250,
        "checkpoint_every_steps": 500,
        "early_stopping_patience": 4,
        "precision": "bf16",
        "compile": True,
        "model": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2},
    },
}


@dataclass
class _Loop:
    """Everything the training loop touches."""

    session: TrainingSession
    model: GPT
    step_model: Callable[..., torch.Tensor]  # the model (DDP-wrapped in several processes), maybe compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopper: EarlyStopping
    streams: TokenStreams
    total_steps: int
    steps_per_epoch: int
    eval_every: int
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    loss_count: int = 0

    @property
    def parts(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "early_stopping": self.stopper}


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
    options = GPTConfig.from_options(cfg.model)  # bad [train.model] fails before any data is read
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
    texts = train_texts([(use.dataset, use.repeat) for use in uses])
    tokenizer, model_config = _tokenizer_and_config(options, parent, texts)
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

    def body() -> GPT:
        streams = token_streams(
            texts, record_texts(dataset, "test"), tokenizer, block_size=model_config.block_size
        )
        if streams.heldout_from_train:
            say(f"[yellow]dataset {dataset.id} has too little test text: holding out the train tail[/yellow]")
        loop = _setup(session, model_config, tokenizer, streams, parent)
        _refuse_other_tokenizer(session, tokenizer)
        session.resume(loop.model, loop.parts)
        _train(loop)
        return loop.model

    return session.run(body, alias=alias, feedback_count=feedback_count)


# -- setup -----------------------------------------------------------------------------------------


def _tokenizer_and_config(
    options: GPTConfig, parent: LoadedModel | None, texts: list[str]
) -> tuple[TextTokenizer, GPTConfig]:
    """A fresh tokenizer trained on the train texts; a fine-tuned model keeps its parent's."""
    if parent is None:
        tokenizer = train_tokenizer(options.tokenizer, texts, vocab_size=options.vocab_size or None)
        return tokenizer, replace(options, vocab_size=tokenizer.vocab_size)
    if not isinstance(parent.model, GPT):
        raise GenloopError(
            f"{parent.version_id} is a {parent.family!r} model; the gpt recipe fine-tunes gpt models only",
            hint="fine-tune from a gpt model version, or set [train].family to match",
        )
    return parent.model.tokenizer, parent.model.config


def _setup(
    session: TrainingSession,
    model_config: GPTConfig,
    tokenizer: TextTokenizer,
    streams: TokenStreams,
    parent: LoadedModel | None,
) -> _Loop:
    cfg, device = session.cfg, session.device
    torch.manual_seed(cfg.seed)  # initial weights and dropout
    model = parent.model if parent is not None else GPT.build(model_config, tokenizer)
    if not isinstance(model, GPT):
        raise GenloopError(f"the gpt recipe cannot train a {type(model).__name__}")
    model.to(device).train()
    steps_per_epoch = max(1, -(-len(streams.train) // (cfg.batch_size * model_config.block_size)))
    steps = total_steps(cfg, batches_per_epoch=steps_per_epoch)
    optimizer = build_optimizer(model.parameters(), cfg, betas=BETAS)
    scheduler = build_scheduler(optimizer, cfg, total_steps=steps)
    replicas = DistributedDataParallel(model) if is_distributed() else model  # DDP averages gradients
    step_model: Callable[..., torch.Tensor] = torch.compile(replicas) if cfg.compile else replicas
    return _Loop(
        session=session,
        model=model,
        step_model=step_model,
        optimizer=optimizer,
        scheduler=scheduler,
        stopper=EarlyStopping(cfg.early_stopping_patience),
        streams=TokenStreams(
            streams.train.to(device), streams.heldout.to(device), streams.heldout_from_train
        ),
        total_steps=steps,
        steps_per_epoch=steps_per_epoch,
        eval_every=cfg.eval_every_steps or steps_per_epoch,
        loss_sum=torch.zeros((), device=device),
    )


def _refuse_other_tokenizer(session: TrainingSession, tokenizer: TextTokenizer) -> None:
    """A checkpoint made with another tokenizer cannot be continued: its ids mean other text."""
    checkpoint = latest_checkpoint(session.run_dir)
    if checkpoint is None:
        return
    saved = saved_tokenizer_fingerprint(checkpoint)
    if saved != tokenizer.fingerprint():
        raise GenloopError(
            f"run {session.run_id} was checkpointed with another tokenizer ({checkpoint} has "
            f"{str(saved)[:12]}, this run built {tokenizer.kind} {tokenizer.fingerprint()[:12]}); "
            "its token ids would mean different text",
            hint=f"remove {session.run_dir} to train this run from scratch with the new tokenizer",
        )


# -- train -----------------------------------------------------------------------------------------


def batch_at(
    stream: torch.Tensor,
    step: int,
    *,
    seed: int,
    batch_size: int,
    block_size: int,
    rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random blocks of the stream (N,) → inputs and next-token targets, (B, T) each.

    `rows` (indices into the batch) builds only those blocks, (len(rows), T): a rank's shard.
    """
    generator = step_generator(seed, step)
    starts = torch.randint(len(stream) - block_size, (batch_size,), generator=generator)  # ≤ N − T − 1
    if rows is not None:
        starts = starts[rows]  # every rank draws all B offsets, so the shards add up to the batch
    positions = starts[:, None] + torch.arange(block_size + 1)  # (B, T + 1)
    chunk = stream[positions.to(stream.device)].long()
    return chunk[:, :-1], chunk[:, 1:]


def _train(loop: _Loop) -> None:
    session, cfg, model = loop.session, loop.session.cfg, loop.model
    state, device = session.state, session.device
    loop.loss_sum.fill_(state.extra.get("loss_sum", 0.0))
    loop.loss_count = int(state.extra.get("loss_count", 0.0))
    with session.progress(loop.total_steps) as advance:
        while state.global_step < loop.total_steps and not loop.stopper.should_stop:
            rows, scale = _shard_rows(cfg.batch_size)
            if rows is not None:  # dropout noise per (seed, step, rank): ranks share one seed and RNG state
                torch.manual_seed(rank_generator(cfg.seed, state.global_step).initial_seed())
            x, y = batch_at(
                loop.streams.train,
                state.global_step,
                seed=cfg.seed,
                batch_size=cfg.batch_size,
                block_size=model.block_size,
                rows=rows,
            )
            with autocast(cfg.precision, device):
                loss = loop.step_model(x, y)  # mean −log p(next token), nats
            loop.optimizer.zero_grad(set_to_none=True)
            (loss * scale if scale != 1.0 else loss).backward()  # DDP averages the gradients here
            if rows is not None:  # the batch's mean loss, for the metrics (one round trip, no host sync)
                loss = all_reduce_row_means(loss.detach().float()[None], len(rows) if scale else 0.0)[0]
            if cfg.grad_clip is not None:  # not optim.clip_gradients: its float() would sync every step
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            loop.optimizer.step()
            loop.scheduler.step()
            state.global_step += 1
            state.epoch, state.step_in_epoch = divmod(state.global_step, loop.steps_per_epoch)
            loop.loss_sum += loss.detach().float()
            loop.loss_count += 1
            advance(1)
            if state.global_step % LOG_EVERY_STEPS == 0:
                session.log(
                    epoch=state.epoch,
                    train_loss=float(loss.detach()),
                    lr=float(loop.scheduler.get_last_lr()[0]),
                )
            last = state.global_step == loop.total_steps
            evaluate = last or state.global_step % loop.eval_every == 0
            if evaluate:
                _evaluate(loop)
            if evaluate or session.checkpoint_due():
                _checkpoint(loop)


def _shard_rows(batch_size: int) -> tuple[torch.Tensor | None, float]:
    """This rank's rows of the batch and its loss scale; (None, 1) for one process (all rows)."""
    if not is_distributed():
        return None, 1.0
    rows = shard_batch(torch.arange(batch_size))
    if len(rows) == 0:  # a batch smaller than the world: a zero-weight row keeps DDP in step
        return rows.new_zeros(1), 0.0
    return rows, shard_loss_scale(len(rows), batch_size)


@torch.no_grad()
def heldout_loss(model: GPT, stream: torch.Tensor, *, precision: str = "fp32") -> float:
    """Mean next-token NLL (nats) over up to EVAL_MAX_BLOCKS fixed, evenly spaced held-out blocks."""
    T = model.block_size
    blocks = max(1, min(EVAL_MAX_BLOCKS, (len(stream) - 1) // T))
    starts = torch.linspace(0, len(stream) - T - 1, blocks).long()
    was_training = model.training
    model.eval()
    total = 0.0
    for chunk_starts in starts.split(EVAL_BATCH):
        positions = chunk_starts[:, None] + torch.arange(T + 1)  # (b, T + 1)
        chunk = stream[positions.to(stream.device)].long()
        with autocast(precision, stream.device):
            total += float(model(chunk[:, :-1], chunk[:, 1:])) * len(chunk_starts)
    model.train(was_training)
    return total / blocks


def _evaluate(loop: _Loop) -> None:
    """Held-out loss, the running train loss, early stopping, and a text sample.

    Rank 0 evaluates; every rank's early stopping sees its held-out loss, so all stop together."""
    session, model, cfg = loop.session, loop.model, loop.session.cfg
    loss = broadcast_from_main(
        heldout_loss(model, loop.streams.heldout, precision=cfg.precision) if session.is_main else 0.0
    )
    metrics = {
        "epoch_train_loss": float(loop.loss_sum) / max(1, loop.loss_count),
        "epoch_heldout_loss": loss,
    }
    if model.config.tokenizer == "char":  # one token per character (and per <eos>)
        metrics["epoch_heldout_bits_per_char"] = loss / math.log(2)
    loop.stopper.observe(loss)
    session.log(epoch=session.state.epoch, **metrics)
    loop.loss_sum.zero_()
    loop.loss_count = 0
    if not session.is_main:  # the others wait at the checkpoint's barrier
        return
    texts = model.sample(SAMPLE_TEXTS, seed=cfg.seed, temperature=0.8, max_tokens=SAMPLE_TOKENS)
    body = "\n\n-----\n\n".join(texts)
    session.write_sample(f"step-{session.state.global_step:06d}.txt", body.encode("utf-8"))


def _checkpoint(loop: _Loop) -> None:
    state = loop.session.state
    state.extra.update(loss_sum=float(loop.loss_sum), loss_count=float(loop.loss_count))
    loop.session.checkpoint(loop.model, loop.parts, epochs_done=state.epoch)

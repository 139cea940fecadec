"""LoRA fine-tuning of a pretrained causal LM (`hf-causal-lm`) on a text dataset, one explicit loop.

    setup    [train.model] checked against the base folder BEFORE the run starts (folder,
             causal LM, target modules); text records → `[bos] tokens [eos]` documents,
             concatenated and cut into blocks of `block_size` tokens (train and test split);
             base + fresh adapter (or a parent version's), AdamW over the adapter only,
             warm-up/cosine schedule, early stopping; resume from this run's newest checkpoint
    train    per epoch: block order shuffled by seed + epoch (a resumed epoch sees the same
             batches); minimise the next-token cross-entropy −mean log p(x_t+1 | x_≤t);
             clip gradients; checkpoint every `checkpoint_every_steps` and at each epoch end
             (the adapter only: kilobytes, not the base); every `eval_every_steps` and at each
             epoch end: held-out loss and perplexity = exp(loss), a text sample, early stopping
    save     register the model version (config.json naming the base + the adapter)

[train.model] takes the model's options (`genloop.models.hf_causal_lm.HFCausalLMConfig`:
base_model, gguf_file, lora_r, lora_alpha, lora_dropout, target_modules, dtype) and the
recipe's: block_size, eval_blocks, sample_prompt, sample_tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.data.record import Record
from genloop.errors import DataError, GenloopError
from genloop.models.hf_causal_lm import HFCausalLM, HFCausalLMConfig, resolve_config
from genloop.models.versions import LoadedModel, load_model_version
from genloop.progress import Advance, say
from genloop.train.checkpoint import TrainerState
from genloop.train.data_order import epoch_order
from genloop.train.device import autocast
from genloop.train.early_stopping import EarlyStopping
from genloop.train.optim import build_optimizer, build_scheduler, clip_gradients, total_steps
from genloop.train.runs import DatasetUse, TrainResult, dataset_uses
from genloop.train.session import TrainingSession
from genloop.workspace import Workspace

FAMILY = "hf-causal-lm"
LOG_EVERY_STEPS = 5

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "epochs": 1,
        "max_steps": 4,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "model": {"block_size": 32},
    },
    "cpu": {
        "epochs": 1,
        "max_steps": 200,
        "batch_size": 4,
        "learning_rate": 5e-4,
        "lr_schedule": "cosine",
        "warmup_steps": 10,
        "grad_clip": 1.0,
        "eval_every_steps": 50,
        "model": {"block_size": 128, "eval_blocks": 16},
    },
    "gpu": {
        "epochs": 3,
        "batch_size": 16,
        "learning_rate": 2e-4,
        "lr_schedule": "cosine",
        "warmup_steps": 100,
        "grad_clip": 1.0,
        "precision": "bf16",
        "eval_every_steps": 200,
        "early_stopping_patience": 3,
        "model": {"block_size": 512, "eval_blocks": 128, "lora_r": 16, "lora_alpha": 32, "dtype": "bfloat16"},
    },
}


@dataclass
class RecipeOptions:
    """The [train.model] options that shape training rather than the model."""

    block_size: int = 128
    """Tokens per training block (at most the base's context length)."""
    eval_blocks: int = 64
    """Held-out blocks scored per evaluation (the first ones: the same every time)."""
    sample_prompt: str = ""
    sample_tokens: int = 32
    """Length of the text sample written at each evaluation (0: none)."""

    def __post_init__(self) -> None:
        if self.block_size < 2 or self.eval_blocks < 1 or self.sample_tokens < 0:
            raise GenloopError(
                f"invalid [train.model]: block_size must be ≥ 2, eval_blocks ≥ 1 and sample_tokens ≥ 0 "
                f"(got {self.block_size}, {self.eval_blocks}, {self.sample_tokens})",
                hint="fix [train.model] in genloop.toml",
            )


@dataclass
class _Loop:
    """Everything the training loop touches."""

    model: HFCausalLM
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stopping: EarlyStopping
    train_blocks: torch.Tensor  # (N, T) token ids
    test_blocks: torch.Tensor  # (M, T') token ids, M may be 0
    options: RecipeOptions
    session: TrainingSession
    total_steps: int

    @property
    def state(self) -> TrainerState:
        return self.session.state

    @property
    def parts(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "early_stopping": self.stopping}


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
    if cfg.ema_decay is not None:
        raise GenloopError(
            "ema_decay is not supported by the hf-causal-lm family (it would copy the whole base model)",
            hint="remove [train].ema_decay",
        )
    parent = load_model_version(workspace, catalog, init_from) if init_from else None
    model_config, options = _configs(workspace, cfg, parent)  # every config error surfaces here
    uses = dataset_uses(dataset, extra_datasets)
    session = TrainingSession(
        workspace,
        catalog,
        family=FAMILY,
        model_name=model_name,
        cfg=cfg,
        model_config={**asdict(model_config), **asdict(options)},
        uses=uses,
        parent_id=parent.version_id if parent else None,
        run_extra={"base_fingerprint": model_config.base_fingerprint},  # a changed base is a new run
    )

    def body() -> HFCausalLM:
        loop = _setup(session, model_config, options, uses, parent)
        session.resume(loop.model, loop.parts)
        _train(loop, cfg)
        return loop.model

    return session.run(body, alias=alias, feedback_count=feedback_count)


# -- setup -----------------------------------------------------------------------------------------


def _configs(
    workspace: Workspace, cfg: TrainConfig, parent: LoadedModel | None
) -> tuple[HFCausalLMConfig, RecipeOptions]:
    """Split [train.model] into the model's and the recipe's options and check both against the
    base folder (a relative base_model is relative to the workspace). A fine-tuned model keeps
    its parent's base and adapter shape."""
    recipe_names = {f.name for f in fields(RecipeOptions)}
    try:
        options = RecipeOptions(**{k: v for k, v in cfg.model.items() if k in recipe_names})
    except TypeError as exc:  # a string where a number belongs
        raise GenloopError(
            f"invalid [train.model] option types: {exc}", hint="block_size is an integer"
        ) from None
    model_options = {k: v for k, v in cfg.model.items() if k not in recipe_names}
    if parent is not None:
        if parent.family != FAMILY:
            raise GenloopError(
                f"{parent.version_id} is a {parent.family!r} model, not an {FAMILY} one",
                hint="fine-tune from an hf-causal-lm model version, or set [train].family to match",
            )
        return HFCausalLMConfig(**{k: v for k, v in parent.config.items() if k != "family"}), options
    config = HFCausalLMConfig.from_options(model_options)
    base = Path(config.base_model).expanduser()
    if not base.is_absolute():
        config.base_model = str(workspace.root / base)
    return resolve_config(config), options


def _setup(
    session: TrainingSession,
    model_config: HFCausalLMConfig,
    options: RecipeOptions,
    uses: Sequence[DatasetUse],
    parent: LoadedModel | None,
) -> _Loop:
    cfg, device = session.cfg, session.device
    torch.manual_seed(cfg.seed)  # the adapter's initial A matrices, LoRA and base dropout
    model = parent.model if parent is not None else HFCausalLM.build(model_config)
    if not isinstance(model, HFCausalLM):
        raise GenloopError(f"the {FAMILY} recipe cannot train a {type(model).__name__}")
    context = model.context_length
    if context is not None and options.block_size > context:
        raise GenloopError(
            f"block_size {options.block_size} exceeds the base model's context of {context} tokens",
            hint=f"set [train.model].block_size to at most {context}",
        )
    train_blocks = token_blocks(_texts(uses, "train"), model.encode_document, options.block_size)
    if len(train_blocks) == 0:
        raise DataError(
            f"dataset {uses[0].dataset.id} has no text in the train split",
            hint="collect more data, or lower [collect].test_fraction",
        )
    test_blocks = token_blocks(_texts(uses[:1], "test"), model.encode_document, options.block_size)
    model.to(device).train()
    optimizer = build_optimizer(model.adapter_parameters().values(), cfg)
    batches_per_epoch = -(-len(train_blocks) // cfg.batch_size)
    steps = total_steps(cfg, batches_per_epoch=batches_per_epoch)
    scheduler = build_scheduler(optimizer, cfg, total_steps=steps)
    stopping = EarlyStopping(cfg.early_stopping_patience)
    session.state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0, stopped=0.0)
    return _Loop(
        model,
        optimizer,
        scheduler,
        stopping,
        train_blocks.to(device),
        test_blocks[: options.eval_blocks].to(device),
        options,
        session,
        steps,
    )


def _texts(uses: Sequence[DatasetUse], split: str) -> Iterable[str]:
    """The text of every record of `split`, each dataset's repeated `repeat` times."""
    for use in uses:
        if use.repeat < 0:
            raise GenloopError(f"dataset {use.dataset.id}: repeat must be ≥ 0 (got {use.repeat})")
        texts = [_record_text(record, use.dataset.id) for record in use.dataset.iter_records(split)]
        for _ in range(use.repeat):
            yield from texts


def _record_text(record: Record, dataset_id: str) -> str:
    if record.modality != "text":
        raise DataError(
            f"dataset {dataset_id}: {record.where} is a {record.modality} record",
            hint=f"the {FAMILY} family trains on text datasets (collect a text source)",
        )
    try:
        return record.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"dataset {dataset_id}: {record.where} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            hint="re-collect it as UTF-8",
        ) from None


def token_blocks(texts: Iterable[str], encode: Any, block_size: int) -> torch.Tensor:
    """Documents encoded and concatenated into one stream, cut into blocks (N, block_size).

    The tail shorter than a block is dropped; a stream shorter than one block is one
    shorter block, so a handful of lines still trains. Empty: a (0, block_size) tensor.
    """
    stream = [token for text in texts for token in encode(text)]
    if len(stream) < 2:
        return torch.zeros((0, block_size), dtype=torch.long)
    if len(stream) < block_size:
        return torch.tensor([stream], dtype=torch.long)
    count = len(stream) // block_size
    return torch.tensor(stream[: count * block_size], dtype=torch.long).view(count, block_size)


# -- train -----------------------------------------------------------------------------------------


def _train(loop: _Loop, cfg: TrainConfig) -> None:
    state = loop.state
    with loop.session.progress(loop.total_steps) as advance:
        for epoch in range(state.epoch, cfg.epochs):
            if state.global_step >= loop.total_steps or state.extra.get("stopped"):
                break
            _train_epoch(loop, cfg, epoch, advance)
            _end_epoch(loop, epoch)
    if state.extra.get("stopped"):
        say(f"early stopping at step {state.global_step}: held-out loss stopped improving")


def _train_epoch(loop: _Loop, cfg: TrainConfig, epoch: int, advance: Advance) -> None:
    order = epoch_order(len(loop.train_blocks), cfg.seed, epoch)
    batches = order.split(cfg.batch_size)
    state, model, device = loop.state, loop.model, loop.train_blocks.device
    model.train()
    started, tokens = time.perf_counter(), 0
    for index in range(state.step_in_epoch, len(batches)):  # skips the batches a resumed epoch did
        if state.global_step >= loop.total_steps or state.extra["stopped"]:
            break
        block = loop.train_blocks[batches[index].to(device)]  # (B, T)
        with autocast(cfg.precision, device):
            loss = model.loss(block)  # −mean log p(x_t+1 | x_≤t)
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, cfg.grad_clip)
        loop.optimizer.step()
        loop.scheduler.step()
        value = float(loss.detach())
        tokens += block.numel()
        state.global_step += 1
        state.step_in_epoch = index + 1
        state.extra["epoch_loss_sum"] += value
        state.extra["epoch_batches"] += 1
        advance(1, epoch=epoch + 1, loss=f"{value:.3f}")
        if state.global_step % LOG_EVERY_STEPS == 0:
            loop.session.log(epoch=epoch, train_loss=value, lr=float(loop.scheduler.get_last_lr()[0]))
        if cfg.eval_every_steps and state.global_step % cfg.eval_every_steps == 0:
            _evaluate(loop, epoch, prefix="")
        if state.global_step % cfg.checkpoint_every_steps == 0 and index + 1 < len(batches):
            _checkpoint(loop, epochs_done=epoch)
    seconds = time.perf_counter() - started
    if tokens and seconds > 0:
        loop.session.log(epoch=epoch, train_tokens_per_second=tokens / seconds)


def _end_epoch(loop: _Loop, epoch: int) -> None:
    """Epoch metrics (held-out loss, perplexity, a sample); then the epoch-end checkpoint."""
    state = loop.state
    loss = state.extra["epoch_loss_sum"] / max(1.0, state.extra["epoch_batches"])
    loop.session.log(epoch=epoch, epoch_train_loss=loss)
    _evaluate(loop, epoch, prefix="epoch_")
    state.epoch, state.step_in_epoch = epoch + 1, 0
    state.extra.update(epoch_loss_sum=0.0, epoch_batches=0.0)
    _checkpoint(loop, epochs_done=epoch + 1)


def _evaluate(loop: _Loop, epoch: int, *, prefix: str) -> None:
    """Held-out loss + perplexity (when there is a test split), early stopping, a text sample.

    At an epoch end that falls on a step already evaluated, the values are reused (logged
    under the epoch_ names) rather than computed and observed twice.
    """
    state, extra = loop.state, loop.state.extra
    fresh = extra.get("last_eval_step") != state.global_step
    if len(loop.test_blocks):
        if fresh:
            extra["last_heldout_loss"] = heldout_loss(
                loop.model, loop.test_blocks, batch_size=loop.session.cfg.batch_size
            )
            loop.stopping.observe(extra["last_heldout_loss"])
            extra["stopped"] = float(loop.stopping.should_stop)
        loss = extra["last_heldout_loss"]
        perplexity = math.exp(min(loss, 50.0))  # capped: a diverged run logs a number, not inf
        loop.session.log(
            epoch=epoch, **{f"{prefix}heldout_loss": loss, f"{prefix}heldout_perplexity": perplexity}
        )
    if fresh and loop.options.sample_tokens:
        prompt = loop.options.sample_prompt
        text = loop.model.generate_text(
            [prompt], max_new_tokens=loop.options.sample_tokens, seed=loop.session.cfg.seed
        )[0]
        loop.session.write_sample(f"step-{state.global_step:08d}.txt", (prompt + text).encode("utf-8"))
    extra["last_eval_step"] = float(state.global_step)


@torch.no_grad()
def heldout_loss(model: HFCausalLM, blocks: torch.Tensor, *, batch_size: int) -> float:
    """Mean next-token cross-entropy (nats per token) over `blocks` (M, T), dropout off."""
    was_training = model.training
    model.eval()
    total = sum(float(model.loss(batch)) * len(batch) for batch in blocks.split(batch_size))
    model.train(was_training)
    return total / len(blocks)


def _checkpoint(loop: _Loop, *, epochs_done: int) -> None:
    loop.session.checkpoint(loop.model, loop.parts, epochs_done=epochs_done)

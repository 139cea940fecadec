"""The lifecycle every recipe shares; the training loop itself stays in the recipe.

    session = TrainingSession(workspace, catalog, family="gan", model_name="shoes",
                              cfg=cfg, model_config=asdict(model_config), uses=uses, parent_id=None)
    return session.run(lambda: _train(session, ...), alias="champion")

`run` takes the run's lock, returns the finished model version when an identical run
has completed before, else writes `runs/RUN_ID/config.json`, marks the run running in
the catalog, calls the body (which trains, using `resume`, `log`, `checkpoint`,
`write_sample`), saves the module the body returns as the model version, and marks the
run completed — or failed, on any error (the checkpoints stay, so a re-run resumes).

Everything a run writes lives in `.genloop/runs/RUN_ID/`: config.json, checkpoints/,
samples/, tensorboard/, model/.

Data-parallel runs (`genloop.train.distributed`): every rank builds a session and calls
the same methods, but only rank 0 takes the lock, writes files, catalog rows, metrics
and the model version; the other ranks train, wait at `checkpoint`'s barrier, and get
rank 0's model version id at the end. One process is rank 0, so nothing changes there.

`on_epoch_end(hook)` lets a caller see each epoch's metrics as the recipe reports them
(`session.epoch_end`); the tuner prunes a trial by raising from its hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from torch import nn

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.models.versions import register_model_version
from genloop.progress import Advance, say, stage_progress
from genloop.storage import atomic_directory, atomic_write_bytes, atomic_write_json
from genloop.train.checkpoint import (
    Stateful,
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from genloop.train.device import training_device, use_available_cpus
from genloop.train.distributed import barrier, broadcast_from_main, is_main_process
from genloop.train.runs import (
    DatasetUse,
    RunRecorder,
    TrainResult,
    completed_result,
    final_metrics,
    run_id_for,
)
from genloop.workspace import Workspace

EpochEndHook = Callable[[int, Mapping[str, float]], None]
"""`hook(epoch, metrics)`: epoch counts from 0; metric names as in TrainResult.metrics (heldout_loss)."""
_EPOCH_END_HOOKS: ContextVar[tuple[EpochEndHook, ...]] = ContextVar("genloop_epoch_end_hooks", default=())


@contextmanager
def on_epoch_end(hook: EpochEndHook) -> Iterator[None]:
    """Call `hook` after every epoch of the runs trained inside this block (this thread/task only).

    An exception the hook raises ends the run as failed (its checkpoints stay, so it can resume).
    """
    token = _EPOCH_END_HOOKS.set((*_EPOCH_END_HOOKS.get(), hook))
    try:
        yield
    finally:
        _EPOCH_END_HOOKS.reset(token)


class TrainingSession:
    """One training run: its id, directory, catalog row, checkpoints, metrics and TensorBoard."""

    def __init__(
        self,
        workspace: Workspace,
        catalog: Catalog,
        *,
        family: str,
        model_name: str,
        cfg: TrainConfig,
        model_config: dict[str, Any],
        uses: Sequence[DatasetUse],
        parent_id: str | None = None,
        run_extra: dict[str, Any] | None = None,
    ) -> None:
        """`model_config` is the family config (written to config.json); `run_extra` anything else
        that identifies the run (e.g. a tokenizer's hash) and so must change its id."""
        use_available_cpus()
        self.workspace = workspace
        self.catalog = catalog
        self.family = family
        self.model_name = model_name
        self.cfg = cfg
        self.model_config = model_config
        self.uses = list(uses)
        self.parent_id = parent_id
        self.train_config = cfg.model_dump(mode="json")
        self.run_extra = run_extra
        identity = {**self.train_config, **({"run_extra": run_extra} if run_extra else {})}
        self.run_id = run_id_for(
            family=family, model_name=model_name, config=identity, uses=self.uses, init_from=parent_id
        )
        self.run_dir = workspace.path("runs", self.run_id, "config.json").parent
        self.recorder = RunRecorder(catalog, self.run_id)
        self.state = TrainerState()
        self.device = training_device()
        self.resumed_from: int | None = None
        self._tensorboard: Any = None
        self.is_main = is_main_process()
        """False on the ranks > 0 of a data-parallel run: they write nothing."""

    # -- lifecycle -------------------------------------------------------------------------------

    def run(
        self, body: Callable[[], nn.Module], *, alias: str | None = "champion", feedback_count: int = 0
    ) -> TrainResult:
        """Train with `body` (returns the module to save) unless this run already completed."""
        if not self.is_main:
            return self._run_follower(body)
        with self.workspace.lock(f"run-{self.run_id}"):
            done = broadcast_from_main(completed_result(self.catalog, self.run_id))
            if done is not None:
                say(f"run {self.run_id} already completed: model version {done.model_version_id}")
                return done
            atomic_write_json(
                self.run_dir / "config.json",  # the run explains itself without the catalog
                {
                    "family": self.family,
                    "model_name": self.model_name,
                    "train": self.train_config,
                    "model": self.model_config,
                    "datasets": [{"id": u.dataset.id, "role": u.role, "repeat": u.repeat} for u in self.uses],
                    "init_from": self.parent_id,
                    **({"extra": self.run_extra} if self.run_extra else {}),
                },
            )
            self.recorder.start(
                model_name=self.model_name,
                family=self.family,
                config=self.train_config,
                parent_model_version_id=self.parent_id,
                path=self.workspace.relative(self.run_dir),
                uses=self.uses,
            )
            try:
                trained = body()
                version_id = self._register(trained, alias, feedback_count)
            except BaseException:
                self.recorder.finish("failed")
                raise
            finally:
                self._close_tensorboard()
            self.recorder.finish("completed")
        broadcast_from_main(version_id)  # the other ranks wait here until the version exists
        metrics = final_metrics(self.catalog, self.run_id)
        return TrainResult(self.run_id, version_id, self.resumed_from, self.cfg.epochs, metrics)

    def _run_follower(self, body: Callable[[], nn.Module]) -> TrainResult:
        """A rank > 0: the same collectives as rank 0's `run`, in the same order; no writes."""
        done: TrainResult | None = broadcast_from_main(None)
        if done is not None:
            return done
        body()
        version_id: str = broadcast_from_main("")
        metrics = final_metrics(self.catalog, self.run_id)
        return TrainResult(self.run_id, version_id, self.resumed_from, self.cfg.epochs, metrics)

    def _register(self, model: nn.Module, alias: str | None, feedback_count: int) -> str:
        weights_dir = self.run_dir / "model"
        with atomic_directory(weights_dir) as staging:
            model.save(staging)  # type: ignore[operator]  # family contract
        return register_model_version(
            self.workspace,
            self.catalog,
            name=self.model_name,
            family=self.family,
            run_id=self.run_id,
            weights_dir=weights_dir,
            parent_id=self.parent_id,
            feedback_count=feedback_count,
            alias=alias,
        )

    # -- checkpoints -----------------------------------------------------------------------------

    def resume(self, model: nn.Module, parts: Mapping[str, Stateful]) -> int | None:
        """Continue from the newest complete checkpoint of this run, if any; its step, or None.

        Call after building the model and every part, before the first step. Metrics an
        interrupted attempt logged after that checkpoint are deleted (they are logged again).
        """
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is not None:
            self.state = load_checkpoint(checkpoint, model=model, parts=parts)
            self.resumed_from = self.state.global_step
            if self.is_main:
                say(f"resuming run {self.run_id} from step {self.state.global_step}")
        if self.is_main:
            self.recorder.forget_after(self.state.global_step)
        return self.resumed_from

    def checkpoint(self, model: nn.Module, parts: Mapping[str, Stateful], *, epochs_done: int) -> None:
        """Flush metrics with the run's progress, then write a checkpoint at the current step.

        Rank 0 writes; every rank then waits at a barrier, so no rank runs ahead of the last
        checkpoint (a run killed after it resumes all ranks from the same step)."""
        if self.is_main:
            # metrics first: a crash between the two leaves rows past the checkpoint, which resume deletes
            self.recorder.flush(epochs_done=epochs_done, steps_done=self.state.global_step)
            save_checkpoint(self.run_dir / "checkpoints", model=model, parts=parts, state=self.state)
        barrier()

    def checkpoint_due(self) -> bool:
        return self.state.global_step % self.cfg.checkpoint_every_steps == 0

    # -- metrics, samples, progress --------------------------------------------------------------

    def log(self, *, epoch: int, **values: float) -> None:
        """Metrics at the current step, to the catalog (with the next checkpoint) and TensorBoard."""
        if not self.is_main:
            return
        self.recorder.log(step=self.state.global_step, epoch=epoch, **values)
        writer = self._writer()
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(name, float(value), self.state.global_step)

    def write_sample(self, name: str, data: bytes) -> Path:
        """Store a sample file (grid PNG, text excerpt, MIDI) as `runs/RUN_ID/samples/NAME`."""
        path = self.run_dir / "samples" / name
        if self.is_main:
            atomic_write_bytes(path, data)
        return path

    def epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Call the `on_epoch_end` hooks (rank 0 only) with the epoch's metrics, `epoch_` prefix dropped."""
        if not self.is_main:
            return
        named = {name.removeprefix("epoch_"): float(value) for name, value in metrics.items()}
        for hook in _EPOCH_END_HOOKS.get():
            hook(epoch, named)

    @contextmanager
    def progress(self, total_steps: int) -> Iterator[Advance]:
        """A progress bar over the run's optimizer steps, already advanced past resumed steps."""
        if not self.is_main:  # one bar per run, not one per rank
            yield lambda n=1, **fields: None
            return
        with stage_progress("train", total=total_steps) as advance:
            advance(self.state.global_step)
            yield advance

    def _writer(self) -> Any:
        if not self.cfg.tensorboard:
            return None
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                say("[yellow]TensorBoard events are not written: pip install tensorboard[/yellow]")
                self.cfg = self.cfg.model_copy(update={"tensorboard": False})
                return None
            # purge_step drops the events an interrupted attempt wrote past the resumed step
            self._tensorboard = SummaryWriter(
                str(self.run_dir / "tensorboard"), purge_step=self.state.global_step or None
            )
        return self._tensorboard

    def _close_tensorboard(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

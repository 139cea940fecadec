"""A hyperparameter study with Optuna: each trial is an ordinary genloop training run.

    outcome = run_study(workspace, catalog, dataset, tune_cfg, base_cfg, model_name="digits")
    outcome.best_params          # {"learning_rate": 0.0031, "hidden_channels": 16}

    trial      suggest values from [tune.space] (TPE), train with train_model(..., alias=None)
               so no trial takes the champion alias; the run and its model version are in
               the catalog like any other run
    pruning    after each epoch the run's held-out metric is reported (session.on_epoch_end);
               MedianPruner stops a trial worse than the median of earlier trials there
    record     .genloop/tune/STUDY/trials/trial-0003.json: state, params, value, run, model
    best       .genloop/tune/STUDY/best.toml: the best values as a [train] snippet

Where the study lives, and why not in the catalog's database: Optuna's RDB storage
stamps its own Alembic revision into the `alembic_version` table, which the catalog's
migrations already own (same table name): the two would break each other's schema
checks. So the study is an Optuna journal file (`.genloop/tune/STUDY/journal.log`,
append-only, file-locked), and what matters to the catalog — each trial's run, metrics
and model version — is written there by training itself. Re-running continues the
journal: finished trials are kept, a trial interrupted mid-run is retried with the same
values, which resumes its training run from its last checkpoint (same config → same run).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import ConfigError
from genloop.progress import say
from genloop.storage import atomic_write_bytes, atomic_write_json
from genloop.train import train_model
from genloop.train.session import on_epoch_end
from genloop.tune.config import TuneConfig, option_kind
from genloop.workspace import Workspace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class StudyOutcome:
    study: str
    directory: Path
    trials: list[FrozenTrial]
    ran: int
    """Trials run by this invocation (the others were finished before)."""
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    best_trial: int | None = None
    best_file: Path | None = None


def study_name(tune: TuneConfig, model_name: str, base: TrainConfig) -> str:
    return tune.study or f"{model_name}-{base.family}"


def run_study(
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    tune: TuneConfig,
    base: TrainConfig,
    *,
    model_name: str,
) -> StudyOutcome:
    """Run the trials still missing from the study (up to `tune.n_trials` in all); write best.toml."""
    name = study_name(tune, model_name, base)
    directory = workspace.path("tune", name, "journal.log").parent
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here instead
    with workspace.lock(f"tune-{name}"):
        study = _open_study(directory, name, tune)
        _retry_interrupted(study)
        done = _trials_done(study)
        remaining = max(0, tune.n_trials - done)
        if done:
            say(f"study {name}: {done} trials done before, {remaining} to go")
        objective = _Objective(workspace, catalog, dataset, tune, base, model_name, directory)
        if remaining:
            study.optimize(objective, n_trials=remaining, timeout=tune.timeout, callbacks=[objective.record])
        trials = study.get_trials()
        outcome = StudyOutcome(name, directory, trials, objective.ran)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if completed:
            best = study.best_trial
            outcome.best_params, outcome.best_value, outcome.best_trial = best.params, best.value, best.number
            outcome.best_file = _write_best(directory / "best.toml", name, tune, best)
    return outcome


def _open_study(directory: Path, name: str, tune: TuneConfig) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(directory / "journal.log")))
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=tune.direction,
        load_if_exists=True,
        pruner=(
            optuna.pruners.MedianPruner(
                n_startup_trials=tune.prune_startup_trials, n_warmup_steps=tune.prune_warmup_epochs
            )
            if tune.prune
            else optuna.pruners.NopPruner()
        ),
    )
    # seeded by the trials so far too: a resumed study must not propose its first values again
    study.sampler = optuna.samplers.TPESampler(seed=tune.seed + len(study.get_trials(deepcopy=False)))
    if study.direction.name.lower() != tune.direction:
        raise ConfigError(
            f"study {name!r} was started to {study.direction.name.lower()} its metric, "
            f"[tune].direction now says {tune.direction}",
            hint="set [tune].study to a new name to start a new study, or restore the direction",
        )
    return study


def _retry_interrupted(study: optuna.Study) -> None:
    """Trials left running by a killed invocation (we hold the study's lock, so none is live):
    mark them failed and queue their values again, so their training run resumes."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            say(f"trial {trial.number} was interrupted: retrying it (its training resumes from a checkpoint)")


def _trials_done(study: optuna.Study) -> int:
    """Finished trials, an interrupted one and its retries counting once."""
    trials = study.get_trials(deepcopy=False)
    return sum(t.state in FINISHED for t in trials) - sum("retry_of" in t.user_attrs for t in trials)


class _Objective:
    """Train one trial; report per-epoch metrics for pruning; write the trial's record."""

    def __init__(
        self,
        workspace: Workspace,
        catalog: Catalog,
        dataset: DatasetHandle,
        tune: TuneConfig,
        base: TrainConfig,
        model_name: str,
        directory: Path,
    ) -> None:
        self.workspace, self.catalog, self.dataset = workspace, catalog, dataset
        self.tune, self.base, self.model_name, self.directory = tune, base, model_name, directory
        self.ran = 0
        self._started = time.perf_counter()

    def __call__(self, trial: optuna.Trial) -> float:
        self._started = time.perf_counter()
        params = {name: _suggest(trial, name, spec) for name, spec in self.tune.space.items()}
        say(f"[bold]trial {trial.number}[/bold] {_shown(params)}")

        def report(epoch: int, metrics: Mapping[str, float]) -> None:
            if self.tune.metric in metrics:
                trial.report(metrics[self.tune.metric], epoch)
                if trial.should_prune():
                    trial.set_user_attr("pruned_at_epoch", epoch + 1)
                    raise optuna.TrialPruned(f"{self.tune.metric} below the median at epoch {epoch + 1}")

        with on_epoch_end(report):
            result = train_model(
                self.workspace, self.catalog, self.dataset, trial_config(self.base, params),
                model_name=self.model_name, alias=None,
            )  # fmt: skip
        trial.set_user_attr("run_id", result.run_id)
        trial.set_user_attr("model_version", result.model_version_id)
        trial.set_user_attr("metrics", result.metrics)
        value = result.metrics.get(self.tune.metric)
        if value is None:
            raise ConfigError(
                f"[tune].metric {self.tune.metric!r} is not a metric run {result.run_id} reports",
                hint=f"metrics this family reports: {', '.join(sorted(result.metrics)) or '(none)'}",
            )
        return value  # NaN (a diverged run) makes Optuna mark the trial failed and go on

    def record(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial: its JSON record and a line for the user."""
        self.ran += 1
        seconds = time.perf_counter() - self._started
        atomic_write_json(
            self.directory / "trials" / f"trial-{trial.number:04d}.json",
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "params": trial.params,
                "metric": self.tune.metric,
                "value": trial.value,
                "intermediate": {str(k): v for k, v in trial.intermediate_values.items()},
                "seconds": round(seconds, 2),
                **trial.user_attrs,
            },
        )
        if trial.state == TrialState.COMPLETE:
            verdict = f"{self.tune.metric} = {trial.value:.4g} → {trial.user_attrs.get('model_version')}"
        elif trial.state == TrialState.PRUNED:
            verdict = f"[yellow]pruned[/yellow] after epoch {trial.user_attrs.get('pruned_at_epoch')}"
        else:
            verdict = f"[red]{trial.state.name.lower()}[/red]"
        best = study.best_value if any(t.state == TrialState.COMPLETE for t in study.trials) else None
        tail = f"  [dim](best {best:.4g}, {seconds:.1f}s)[/dim]" if best is not None else ""
        say(f"  trial {trial.number}: {verdict}{tail}")


def _suggest(trial: optuna.Trial, name: str, spec: Any) -> Any:
    if spec.choices is not None:
        return trial.suggest_categorical(name, spec.choices)
    if option_kind(name) is int:
        step = int(spec.step or 1)
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def trial_config(base: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """`base` with the trial's values set explicitly (so they win over a preset; the rest still
    comes from the preset, as for `genloop train`)."""
    explicit = {name: getattr(base, name) for name in base.model_fields_set}
    return TrainConfig.model_validate({**explicit, **params})


def _shown(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _write_best(path: Path, name: str, tune: TuneConfig, best: FrozenTrial) -> Path:
    atomic_write_bytes(path, best_snippet(name, tune, best).encode("utf-8"))
    return path


def best_snippet(name: str, tune: TuneConfig, best: FrozenTrial) -> str:
    """The best trial's values as a [train] snippet to paste into genloop.toml."""
    lines = [
        f"# best of study {name!r}: trial {best.number}, {tune.metric} = {best.value:.6g}"
        f" (model version {best.user_attrs.get('model_version')})",
        "[train]",
        *(f"{key} = {_toml_value(value)}" for key, value in best.params.items()),
    ]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)  # ints, strings (TOML basic strings are JSON-compatible), lists

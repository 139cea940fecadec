"""A training run in the catalog: its deterministic id, its row, its datasets and its metrics.

Shared by every recipe. Metrics are buffered and written together with the run's
progress right before each checkpoint; on resume, metrics logged after the
checkpoint being resumed are deleted (they will be logged again), so a killed and
resumed run has exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select

from genloop.catalog import Catalog
from genloop.catalog.models import ModelVersion, Run, RunDataset, RunMetric, utcnow
from genloop.data.datasets import DatasetHandle
from genloop.storage import stable_hash


@dataclass(frozen=True)
class DatasetUse:
    """A dataset version a run trains on, its role (`train`, `feedback`) and how often it repeats."""

    dataset: DatasetHandle
    role: str = "train"
    repeat: int = 1


def dataset_uses(
    dataset: DatasetHandle, extra_datasets: Sequence[tuple[DatasetHandle, str, int]] = ()
) -> list[DatasetUse]:
    """The run's datasets: `dataset` (role train, once), then each (dataset, role, repeat) extra."""
    return [DatasetUse(dataset), *(DatasetUse(h, role, repeat) for h, role, repeat in extra_datasets)]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_version_id: str
    resumed_from_step: int | None
    """The checkpoint step training continued from; None when it started fresh (or was already done)."""
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    """Final per-epoch metrics: train_loss, heldout_loss, heldout_recon, heldout_kl (nats per image)."""
    already_completed: bool = False
    """True when an identical run had finished before and its model version was returned."""


def run_id_for(
    *, family: str, model_name: str, config: dict[str, Any], uses: Sequence[DatasetUse], init_from: str | None
) -> str:
    """Same family, config, data and starting point → same run id (so a rerun resumes or reuses it).

    `init_from` should be a resolved version id: an alias moves, a version does not.
    """
    datasets = [[use.dataset.id, use.role, use.repeat] for use in uses]
    return stable_hash(
        {
            "family": family,
            "model": model_name,
            "config": config,
            "datasets": datasets,
            "init_from": init_from,
        }
    )


def completed_result(catalog: Catalog, run_id: str) -> TrainResult | None:
    """The result of run `run_id` if it already produced a model version."""
    with catalog.session() as session:
        version = session.scalars(
            select(ModelVersion).where(ModelVersion.run_id == run_id).order_by(ModelVersion.version.desc())
        ).first()
        run = session.get(Run, run_id)
        if version is None or run is None:
            return None
        if run.status != "completed":  # killed between registering the version and finishing the row
            run.status, run.finished_at = "completed", run.finished_at or utcnow()
        epochs = run.epochs_done
    return TrainResult(
        run_id, version.id, None, epochs, final_metrics(catalog, run_id), already_completed=True
    )


def final_metrics(catalog: Catalog, run_id: str) -> dict[str, float]:
    """The last logged value of every per-epoch metric of a run."""
    with catalog.session() as session:
        rows = session.scalars(
            select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.step, RunMetric.id)
        ).all()
        return {row.name.removeprefix("epoch_"): row.value for row in rows if row.name.startswith("epoch_")}


class RunRecorder:
    """Writes one run's row, dataset links and metrics to the catalog."""

    def __init__(self, catalog: Catalog, run_id: str) -> None:
        self.catalog = catalog
        self.run_id = run_id
        self._pending: list[RunMetric] = []

    def start(
        self,
        *,
        model_name: str,
        family: str,
        config: dict[str, Any],
        parent_model_version_id: str | None,
        path: str,
        uses: Sequence[DatasetUse],
    ) -> None:
        """Create the run row (or mark an earlier attempt of it running again)."""
        with self.catalog.session() as session:
            run = session.get(Run, self.run_id)
            if run is None:
                run = Run(
                    id=self.run_id,
                    model_name=model_name,
                    family=family,
                    config=config,
                    parent_model_version_id=parent_model_version_id,
                    path=path,
                )
                seen: set[str] = set()
                for use in uses:  # one row per dataset version (the first role wins)
                    if use.dataset.id not in seen:
                        seen.add(use.dataset.id)
                        run.datasets.append(RunDataset(dataset_version_id=use.dataset.id, role=use.role))
                session.add(run)
            run.status, run.finished_at = "running", None

    def forget_after(self, step: int) -> None:
        """Delete metrics logged after `step` (an interrupted attempt's, about to be redone)."""
        with self.catalog.session() as session:
            session.execute(delete(RunMetric).where(RunMetric.run_id == self.run_id, RunMetric.step > step))

    def log(self, *, step: int, epoch: int, **values: float) -> None:
        for name, value in values.items():
            self._pending.append(
                RunMetric(run_id=self.run_id, step=step, epoch=epoch, name=name, value=float(value))
            )

    def flush(self, *, epochs_done: int, steps_done: int) -> None:
        """Write buffered metrics and the run's progress in one transaction."""
        with self.catalog.session() as session:
            session.add_all(self._pending)
            run = session.get(Run, self.run_id)
            if run is not None:
                run.epochs_done, run.steps_done = epochs_done, steps_done
        self._pending = []

    def finish(self, status: str) -> None:
        with self.catalog.session() as session:
            run = session.get(Run, self.run_id)
            if run is not None:
                run.status, run.finished_at = status, utcnow()

"""Resumable stage runs: every finished shard is marked, so a killed run picks up where it stopped.

While `clean` or `annotate` runs, each batch's result is written to a work
directory keyed by the input dataset version and the stage's config::

    .genloop/work/clean/<input version id>-<config hash>/
        shard-00007.parquet        kept records of input batch 7
        shard-00007.tail.parquet   what entered the stateful tail (dedup), for replay
        shard-00007.rejects.parquet  its dropped records, when the run keeps rejects
        shard-00007.done           JSON: records seen, kept, rejects, the batch's full report

A shard counts as finished only when its `.done` marker exists; every file is
written atomically and the marker last, so a SIGKILL at any instant leaves either
a finished shard or nothing that is trusted. Shards finish in input order (the
stateful tail runs in the driver, in order), so the finished shards are a prefix
of the input: a re-run reuses them without recomputing, skips their input records,
and processes only the rest. Stateful steps (exact and near-duplicate dedup) get
their state back by replaying the tail over the finished shards' tail inputs, which
reproduces exactly what an uninterrupted run remembered, drops included. The rejects
of a finished shard are handed to `on_rejects` again from its `.rejects.parquet` (the
rejects shard being assembled by the killed run was a temporary file and is gone), so
the version's rejects are those of an uninterrupted run: none lost, none twice. The
version assembled at the end is therefore identical (same id, same report) to the
one an uninterrupted run writes; the caller deletes the work directory after that.

Stale work directories: a run killed and never resumed (or resumed under another
config, which is another key) would leave its shards forever. So when a run starts,
`remove_stale_work` deletes every other work directory of the same stage that was
last touched before this run started and whose lock nobody holds; the directory this
run resumes from is its own, so it is kept. A run going on elsewhere in the same
workspace holds its lock and is left alone.

Executor and worker count are not part of the key: results do not depend on them,
so a run killed under `--executor ray` may be finished with `local`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout
from pydantic import BaseModel

from genloop import __version__
from genloop.data.pipeline import (
    BatchOutcome,
    CleanReport,
    Executor,
    PipelineRun,
    ReasonCount,
    Rejected,
    Step,
    StepReport,
    apply_steps,
    check_unique_names,
    iter_outcomes,
    split_parallel,
)
from genloop.data.record import Record, records_to_table, table_to_records
from genloop.data.rejects import rejects_from_table, rejects_table
from genloop.errors import DataError
from genloop.storage import atomic_write_bytes, atomic_write_json, stable_hash
from genloop.workspace import Workspace

log = logging.getLogger(__name__)


RUN_INDEPENDENT = {"executor", "workers"}
"""Config keys that do not change results, so a run may resume under other values."""


def work_directory(
    workspace: Workspace, stage: str, input_id: str, config: BaseModel, steps: list[Step]
) -> Path:
    """Where a `stage` run over dataset version `input_id` with `config` and `steps` keeps its shards."""
    key = {
        "genloop": __version__,  # another release may clean differently: start afresh
        "config": config.model_dump(mode="json", exclude=RUN_INDEPENDENT & set(type(config).model_fields)),
        "steps": [step.name for step in steps],
    }
    return workspace.path("work", stage, f"{input_id}-{stable_hash(key, 12)}")


def report_to_json(report: CleanReport) -> dict[str, Any]:
    """The whole report, examples per step included (the manifest's `as_dict` keeps fewer)."""
    steps = [
        {
            "name": step.name,
            "seen": step.seen,
            "kept": step.kept,
            "counters": step.counters,
            "dropped": {k: {"count": c.count, "examples": c.examples} for k, c in step.dropped.items()},
        }
        for step in report.steps
    ]
    return {"seen": report.seen, "kept": report.kept, "steps": steps}


def report_from_json(data: dict[str, Any]) -> CleanReport:
    steps = [
        StepReport(
            step["name"],
            seen=step["seen"],
            kept=step["kept"],
            dropped={k: ReasonCount(c["count"], list(c["examples"])) for k, c in step["dropped"].items()},
            counters=dict(step["counters"]),
        )
        for step in data["steps"]
    ]
    return CleanReport(steps, kept=data["kept"], seen=data["seen"])


def _write_parquet(path: Path, records: list[Record]) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(records_to_table(records), sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class FinishedShard:
    index: int
    report: CleanReport
    rejects: int = 0
    """Dropped records saved in its `.rejects.parquet` (0: none, or the run did not keep rejects)."""


class ShardLedger:
    """The shards of one work directory: which are finished, their records, writing new ones."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, index: int, suffix: str) -> Path:
        return self.path / f"shard-{index:05d}{suffix}"

    def finished(self) -> list[FinishedShard]:
        """The finished shards 0, 1, ... up to the first one without a `.done` marker."""
        shards: list[FinishedShard] = []
        while (marker := self._file(len(shards), ".done")).is_file():
            done = json.loads(marker.read_text(encoding="utf-8"))
            report = report_from_json(done["report"])
            shards.append(FinishedShard(len(shards), report, int(done.get("rejects", 0))))
        return shards

    def write(self, index: int, outcome: BatchOutcome, *, with_tail: bool) -> None:
        _write_parquet(self._file(index, ".parquet"), outcome.kept)
        if with_tail:
            _write_parquet(self._file(index, ".tail.parquet"), outcome.tail_input)
        if outcome.report.rejects:
            sink = pa.BufferOutputStream()
            pq.write_table(rejects_table(outcome.report.rejects), sink, compression="zstd")
            atomic_write_bytes(self._file(index, ".rejects.parquet"), sink.getvalue().to_pybytes())
        # The marker last: a shard without one is redone, whatever else of it exists.
        done = {
            "seen": outcome.report.seen,
            "kept": len(outcome.kept),
            "rejects": len(outcome.report.rejects),
            "report": report_to_json(outcome.report),
        }
        atomic_write_json(self._file(index, ".done"), done)

    def kept(self, index: int) -> Iterator[Record]:
        return table_to_records(pq.read_table(self._file(index, ".parquet")))

    def rejects(self, shard: FinishedShard) -> list[Rejected]:
        if not shard.rejects:
            return []
        return rejects_from_table(pq.read_table(self._file(shard.index, ".rejects.parquet")))

    def tail_input(self, index: int) -> list[Record]:
        return list(table_to_records(pq.read_table(self._file(index, ".tail.parquet"))))


def _replay(tail: list[Step], ledger: ShardLedger, shard: FinishedShard) -> None:
    """Rebuild the stateful steps' memory by running them again over a finished shard's tail input."""
    kept, _ = apply_steps(tail, ledger.tail_input(shard.index))
    if len(kept) != shard.report.kept:
        raise DataError(
            f"cannot resume from {ledger.path}: replaying finished shard {shard.index} kept "
            f"{len(kept)} records, the interrupted run kept {shard.report.kept}",
            hint=f"the steps or their code changed since; delete {ledger.path} and run again",
        )


def resumable_run(
    records: Iterable[Record],
    steps: list[Step],
    executor: Executor,
    work: Path,
    *,
    total: int | None = None,
    description: str = "clean",
    on_rejects: Callable[[list[Rejected]], None] | None = None,
) -> PipelineRun:
    """Like `run_pipeline`, marking each finished shard in `work` and reusing those of a killed run.

    Rejects (`on_rejects`) are handed over for every shard, in order: a finished shard's from
    its saved `.rejects.parquet`, a new shard's as it is processed.
    """
    check_unique_names(steps)
    ledger = ShardLedger(work)
    _, tail = split_parallel(steps)
    report = CleanReport.for_steps(steps)

    started = time.time()

    def kept() -> Iterator[Record]:
        try:
            lock = FileLock(str(work.with_suffix(".lock")))
            lock.acquire(timeout=0)
        except Timeout:
            raise DataError(
                f"another process is running this {description} ({work})",
                hint="wait for it to finish, or stop it; a killed run is resumed by running again",
            ) from None
        try:
            remove_stale_work(work, started)
            finished = ledger.finished()
            if finished:
                log.info("%s: reusing %d finished shards from %s", description, len(finished), work)
            for shard in finished:
                if tail:
                    _replay(tail, ledger, shard)
                report.merge(shard.report)
                if on_rejects is not None and shard.rejects:
                    on_rejects(ledger.rejects(shard))
                yield from ledger.kept(shard.index)
            skip = report.seen
            remaining = None if total is None else total - skip
            outcomes = iter_outcomes(
                islice(records, skip, None),
                steps,
                executor,
                total=remaining,
                description=description,
                keep_rejects=on_rejects is not None,
            )
            for index, outcome in enumerate(outcomes, start=len(finished)):
                ledger.write(index, outcome, with_tail=bool(tail))
                report.merge(outcome.report)
                if on_rejects is not None and outcome.report.rejects:
                    on_rejects(outcome.report.rejects)
                yield from outcome.kept
        finally:
            lock.release()

    return PipelineRun(kept(), report)


def remove_stale_work(work: Path, started: float) -> list[Path]:
    """Delete the other work directories of `work`'s stage untouched since `started` and unlocked.

    Returns what was removed. `work` itself (the one this run resumes from) is kept.
    """
    removed: list[Path] = []
    if not work.parent.is_dir():
        return removed
    for other in sorted(work.parent.iterdir()):
        if other == work or not other.is_dir() or other.stat().st_mtime >= started:
            continue
        lock = FileLock(str(other.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another process is running (or resuming) that one right now
        try:
            shutil.rmtree(other, ignore_errors=True)
            removed.append(other)
        finally:
            lock.release()
        other.with_suffix(".lock").unlink(missing_ok=True)
    if removed:
        log.info(
            "removed %d stale work director%s: %s",
            len(removed),
            "y" if len(removed) == 1 else "ies",
            ", ".join(p.name for p in removed),
        )
    return removed


def remove_work(work: Path) -> None:
    """Delete a work directory once its stage's dataset version is written."""
    shutil.rmtree(work, ignore_errors=True)
    work.with_suffix(".lock").unlink(missing_ok=True)

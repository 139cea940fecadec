"""Data pipelines: steps over batches of records, drop reasons counted, an executor to run them.

A step is any callable with a `name` that takes a batch (list of `Record`) and
returns the records it keeps plus `(record, reason)` for each one it drops::

    class DropBlank:
        name = "blank"
        def __call__(self, batch): return check_each(batch, self.check, modality="image")

A pipeline is a list of steps applied in order. *How* batches are formed and where
they run is the executor's business (`executors/local.py`: one process or a pool over
the cores; `executors/ray.py`: Ray Data), so the same step code runs anywhere. Each
batch comes back with its own small report and the driver merges them: nothing
shared is mutated on a worker.

Parallel safety, the contract every step declares with a class attribute::

    parallel_safe = True   # output for a record depends on that record (and config) only

A parallel-safe step may run on any worker, on any batch, in any order, and must
be picklable. A step without the attribute (or with False) is *stateful* or
order-dependent (exact and near-duplicate dedup remember what they kept) and runs
in the driver process, over batches in input order. `run_pipeline` splits a
pipeline at its first step that is not parallel-safe: the head runs on the
executor's workers, the tail in the driver, so a new step whose author forgot the
attribute is slow, never wrong. The kept records, their order and every reason are
the same on every executor and any number of workers. A stateful step that is
expensive can be split in two: a parallel-safe step that computes a signature into
`meta` (MinHash, pHash) and a stateful step that only compares signatures.

Reasons are plain strings meant for people ("truncated image"). They are counted by
*kind*: the text before the first `:` or `(`, so "blank image (std=0.0 < 2.0)" and
"blank image (std=1.2 < 2.0)" count together. A step whose reason has no such
prefix (it names another record) passes a `Reason` with an explicit kind.

Input errors versus judgements: a step that drops records only because they cannot
be used at all (undecodable, truncated, unparsable, a decompression bomb: the input
is broken, not merely unwanted) declares ``drops_input_errors = True``. Its drops are
also counted as the report's `input_errors`, which is what the CLI's exit status 3
("finished, but some input was broken") looks at; duplicates, quality and licence
filters are the pipeline working as configured and never change the exit status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from genloop.data.record import Record
from genloop.progress import stage_progress

EXAMPLES_PER_REASON = 5


class Reason(str):
    """A drop reason (the full text) that is counted under an explicit `kind`."""

    kind: str

    def __new__(cls, text: str, *, kind: str) -> Reason:
        reason = super().__new__(cls, text)
        reason.kind = kind
        return reason

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, str]]:
        # So reasons survive pickling (batches sent to and from Ray workers).
        return (str(self),), {"kind": self.kind}


def reason_kind(reason: str) -> str:
    """The key a reason is counted under: its explicit kind, else the text before `:` or `(`."""
    explicit = getattr(reason, "kind", None)
    return explicit or re.split(r"[:(]", reason, maxsplit=1)[0].strip() or reason


@dataclass
class StepOutput:
    kept: list[Record]
    dropped: list[tuple[Record, str]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    """Counts a step wants in the report besides drops, e.g. `{"pii:EMAIL": 3}` for a rewriting step."""


class Step(Protocol):
    name: str

    def __call__(self, batch: list[Record]) -> StepOutput: ...


def check_each(
    batch: list[Record], check: Callable[[Record], Record | str], *, modality: str | None = None
) -> StepOutput:
    """Apply a per-record check: it returns the (possibly changed) record to keep it, a reason to drop it.

    Records of another modality than `modality` pass through untouched, so image and
    text steps can share one pipeline over mixed data.
    """
    output = StepOutput(kept=[])
    for record in batch:
        if modality is not None and record.modality != modality:
            output.kept.append(record)
            continue
        result = check(record)
        if isinstance(result, Record):
            output.kept.append(result)
        else:
            output.dropped.append((record, result))
    return output


@dataclass
class ReasonCount:
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, example: str, n: int = 1) -> None:
        self.count += n
        if len(self.examples) < EXAMPLES_PER_REASON:
            self.examples.append(example)

    def merge(self, other: ReasonCount) -> None:
        self.count += other.count
        room = EXAMPLES_PER_REASON - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])


@dataclass
class StepReport:
    """What one step saw, kept and dropped (per reason kind, with example locations)."""

    name: str
    seen: int = 0
    kept: int = 0
    dropped: dict[str, ReasonCount] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    input_errors: bool = False
    """Whether this step's drops are input errors (its step declares `drops_input_errors`)."""

    def add(self, seen: int, output: StepOutput) -> None:
        self.seen += seen
        self.kept += len(output.kept)
        self._count(output.counters)
        for record, reason in output.dropped:
            # The example names the file *and* the full reason, e.g. "data/cat/3.png: truncated image".
            self.dropped.setdefault(reason_kind(reason), ReasonCount()).add(f"{record.where}: {reason}")

    def _count(self, counters: dict[str, int]) -> None:
        for key, n in counters.items():
            self.counters[key] = self.counters.get(key, 0) + n

    def merge(self, other: StepReport) -> None:
        self.seen += other.seen
        self.kept += other.kept
        self._count(other.counters)
        for kind, counted in other.dropped.items():
            self.dropped.setdefault(kind, ReasonCount()).merge(counted)

    def as_dict(self) -> dict[str, Any]:
        dropped = {kind: c.count for kind, c in self.dropped.items()}
        counted = {"counters": dict(sorted(self.counters.items()))} if self.counters else {}
        errors = {"input_errors": True} if self.input_errors else {}
        return {
            "name": self.name,
            "seen": self.seen,
            "kept": self.kept,
            "dropped": dropped,
            **counted,
            **errors,
        }


@dataclass
class CleanReport:
    """The report of a whole pipeline run (clean, annotate): one `StepReport` per step, in order."""

    steps: list[StepReport]
    kept: int = 0
    seen: int = 0
    rejects: list[Rejected] = field(default_factory=list)
    """One batch's dropped records, when the run keeps them; never merged, so memory stays one batch."""

    @classmethod
    def for_steps(cls, steps: Iterable[Step]) -> CleanReport:
        return cls([StepReport(step.name, input_errors=drops_input_errors(step)) for step in steps])

    def merge(self, other: CleanReport) -> None:
        for mine, theirs in zip(self.steps, other.steps, strict=True):
            mine.merge(theirs)
        self.kept += other.kept
        self.seen += other.seen

    @property
    def dropped_total(self) -> int:
        return sum(c.count for step in self.steps for c in step.dropped.values())

    @property
    def input_error_count(self) -> int:
        """Records dropped because the input was broken (steps with `drops_input_errors`)."""
        return sum(c.count for step in self.steps if step.input_errors for c in step.dropped.values())

    def dropped_by_kind(self) -> dict[str, ReasonCount]:
        merged: dict[str, ReasonCount] = {}
        for step in self.steps:
            for kind, counted in step.dropped.items():
                merged.setdefault(kind, ReasonCount()).merge(counted)
        return dict(sorted(merged.items(), key=lambda item: -item[1].count))

    def as_dict(self) -> dict[str, Any]:
        """The manifest's `report`: kept, dropped per reason kind (count + examples), per-step counts."""
        return {
            "kept": self.kept,
            "dropped": {
                k: {"count": c.count, "examples": c.examples} for k, c in self.dropped_by_kind().items()
            },
            "steps": [step.as_dict() for step in self.steps],
            "input_errors": {
                "count": self.input_error_count,
                "steps": [step.name for step in self.steps if step.input_errors and step.dropped],
            },
        }

    def summary(self) -> str:
        """One line for messages: `3 dropped (2 truncated image, 1 blank image)`."""
        parts = ", ".join(f"{c.count} {kind}" for kind, c in self.dropped_by_kind().items())
        return f"{self.dropped_total} dropped" + (f" ({parts})" if parts else "")


BatchResult = tuple[list[Record], CleanReport]
Rejected = tuple[str, Record, str]  # (step name, the record as that step saw it, reason)


class Executor(Protocol):
    """Runs `process` over batches of `records`, yielding each batch's result in input order."""

    def run(
        self,
        records: Iterable[Record],
        process: Callable[[list[Record]], BatchResult],
        *,
        total: int | None = None,
        description: str = "clean",
    ) -> Iterator[BatchResult]: ...


def apply_steps(steps: list[Step], batch: list[Record], *, keep_rejects: bool = False) -> BatchResult:
    """Run every step over one batch (what an executor runs, possibly on another worker)."""
    report = CleanReport.for_steps(steps)
    report.seen = len(batch)
    for step, step_report in zip(steps, report.steps, strict=True):
        output = step(batch)
        step_report.add(len(batch), output)
        if keep_rejects:
            report.rejects += [(step.name, record, reason) for record, reason in output.dropped]
        batch = output.kept
    report.kept = len(batch)
    return batch, report


def drops_input_errors(step: Step) -> bool:
    return bool(getattr(step, "drops_input_errors", False))


def is_parallel_safe(step: Step) -> bool:
    return bool(getattr(step, "parallel_safe", False))


def split_parallel(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """(head, tail): the longest prefix of parallel-safe steps, and the rest (run in the driver)."""
    head = 0
    while head < len(steps) and is_parallel_safe(steps[head]):
        head += 1
    return steps[:head], steps[head:]


@dataclass
class BatchOutcome:
    """One batch through the whole pipeline: what entered the tail (for resume), kept, report."""

    tail_input: list[Record]
    kept: list[Record]
    report: CleanReport


def iter_outcomes(
    records: Iterable[Record],
    steps: list[Step],
    executor: Executor,
    *,
    total: int | None = None,
    description: str = "clean",
    keep_rejects: bool = False,
) -> Iterator[BatchOutcome]:
    """Batches in input order: the parallel-safe head on `executor`, the stateful tail here."""
    head, tail = split_parallel(steps)
    process = partial(apply_steps, head, keep_rejects=keep_rejects)
    seen = kept = 0
    with stage_progress(description, total) as advance:
        for head_kept, head_report in executor.run(records, process, total=total, description=description):
            batch_kept, tail_report = apply_steps(tail, head_kept, keep_rejects=keep_rejects)
            report = CleanReport(
                head_report.steps + tail_report.steps,
                kept=len(batch_kept),
                seen=head_report.seen,
                rejects=head_report.rejects + tail_report.rejects,
            )
            seen, kept = seen + report.seen, kept + report.kept
            advance(report.seen, kept=kept, dropped=seen - kept)
            yield BatchOutcome(head_kept if tail else [], batch_kept, report)


def check_unique_names(steps: list[Step]) -> None:
    names = [step.name for step in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"step names must be unique in a pipeline: {names}")


@dataclass
class PipelineRun:
    """The kept records (a lazy iterator) and the report, complete once `kept` is exhausted."""

    kept: Iterator[Record]
    report: CleanReport


def run_pipeline(
    records: Iterable[Record],
    steps: list[Step],
    executor: Executor,
    *,
    total: int | None = None,
    description: str = "clean",
    on_rejects: Callable[[list[Rejected]], None] | None = None,
) -> PipelineRun:
    """Stream `records` through `steps` on `executor`; nothing is held beyond one batch per worker.

    `on_rejects`, when given, receives each batch's dropped records (e.g. to write a rejects shard).
    """
    check_unique_names(steps)
    report = CleanReport.for_steps(steps)

    def kept() -> Iterator[Record]:
        keep_rejects = on_rejects is not None
        for outcome in iter_outcomes(
            records, steps, executor, total=total, description=description, keep_rejects=keep_rejects
        ):
            report.merge(outcome.report)
            if on_rejects is not None and outcome.report.rejects:
                on_rejects(outcome.report.rejects)
            yield from outcome.kept

    return PipelineRun(kept(), report)

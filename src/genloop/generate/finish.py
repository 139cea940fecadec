"""From a sampled artifact to the bytes of a published-ready file, under a channel's policy.

    post-process chain → safety checks → labels → FinishedItem(bytes, verdicts, status, timings)

`ChannelPlan` is built once per generation job (processors, checks and keys are loaded
once), then `finish_many` runs per chunk: post-processing and labels item by item, and each
safety check over the whole chunk at once when it can (`check_many`, e.g. near-duplicate's
one matrix product against the training images); its verdicts equal the one-item ones.
Items that fail a check, or every item when the channel says `review = "always"`, get
status "review": nothing reaches publication without passing the checks or a person's approval.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from genloop.config import GenloopConfig, LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels, signer_for
from genloop.generate.postprocess.registry import Processor, build_chain, run_chain
from genloop.generate.safety.registry import SafetyCheck, SafetyContext, Verdict, build_checks, run_checks

ItemStatus = Literal["ready", "review"]
T = TypeVar("T")
FINISH_THREADS_ENV = "GENLOOP_FINISH_THREADS"


@dataclass(frozen=True)
class FinishedItem:
    data: bytes
    extension: str
    format: str
    labels: dict[str, Any]
    verdicts: list[Verdict]
    status: ItemStatus
    timings: dict[str, float]
    """Seconds per step: postprocess, safety, label (sampling is timed by the engine)."""


@dataclass
class ChannelPlan:
    channel: str
    modality: str
    chain: list[Processor]
    checks: list[SafetyCheck]
    labels: LabelConfig
    review: Literal["on-fail", "always"]
    safety_context: SafetyContext
    label_context: LabelContext
    cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: GenloopConfig,
        *,
        channel: str,
        modality: str,
        safety_context: SafetyContext,
        label_context: LabelContext,
    ) -> ChannelPlan:
        policy = config.channel_policy(channel)
        # a modality the policy does not name gets its default checks; `[]` runs none
        safety = None if policy.safety is None else policy.safety.get(modality)  # type: ignore[call-overload]
        return cls(
            channel=channel,
            modality=modality,
            chain=build_chain(policy.postprocess.get(modality, []), modality),  # type: ignore[call-overload]
            checks=build_checks(safety, modality),
            labels=config.generate.labels,
            review=policy.review,
            safety_context=safety_context,
            label_context=label_context,
        )

    def finish(self, artifact: Artifact) -> FinishedItem:
        return self.finish_many([artifact])[0]

    def finish_many(self, artifacts: Sequence[Artifact]) -> list[FinishedItem]:
        """Each artifact finished, in order; the same bytes and verdicts as one at a time.

        Images may be post-processed and labelled on `finish_threads()` threads (Pillow's resize
        and zlib, and numpy, release the GIL for much of an item's ≈ 10 ms); every step is a pure
        function of its item, so the threads change no byte. Checks run here, over the chunk.
        """
        threads = finish_threads() if self.modality == "image" and len(artifacts) > 1 else 1
        if threads > 1 and self.labels.implicit:
            signer_for(self.labels, self.label_context)  # load (or create) the key once, before the threads
        with _pool(threads) as pool:
            processed = list(pool.map(self._postprocess, artifacts))
            start = time.perf_counter()
            verdicts = self._check_all([artifact for artifact, _ in processed])
            safety_seconds = (time.perf_counter() - start) / max(len(processed), 1)  # shared evenly
            return list(pool.map(self._label, processed, verdicts, [safety_seconds] * len(processed)))

    def _postprocess(self, artifact: Artifact) -> tuple[Artifact, float]:
        start = time.perf_counter()
        return run_chain(self.chain, artifact), time.perf_counter() - start

    def _label(
        self, processed: tuple[Artifact, float], verdicts: list[Verdict], safety_seconds: float
    ) -> FinishedItem:
        artifact, postprocess_seconds = processed
        start = time.perf_counter()
        labelled = apply_labels(artifact, self.labels, self.label_context)
        timings = {
            "postprocess": postprocess_seconds,
            "safety": safety_seconds,
            "label": time.perf_counter() - start,
        }
        failed = any(not verdict.passed for verdict in verdicts)
        status: ItemStatus = "review" if failed or self.review == "always" else "ready"
        return FinishedItem(
            data=labelled.data,
            extension=labelled.extension,
            format=artifact.format,
            labels=labelled.labels,
            verdicts=verdicts,
            status=status,
            timings=timings,
        )

    def _check_all(self, artifacts: Sequence[Artifact]) -> list[list[Verdict]]:
        """verdicts[i][j]: check j on artifact i (the order of `self.checks`, as `run_checks`)."""
        verdicts: list[list[Verdict]] = [[] for _ in artifacts]
        for check in self.checks:
            check_many = getattr(check, "check_many", None)
            if check_many is not None:
                results = check_many(artifacts, self.safety_context)
            else:
                results = [run_checks([check], artifact, self.safety_context)[0] for artifact in artifacts]
            for item_verdicts, verdict in zip(verdicts, results, strict=True):
                item_verdicts.append(verdict)
        return verdicts


def finish_threads() -> int:
    """Threads that finish a chunk's images: GENLOOP_FINISH_THREADS, else 1.

    Off by default: on 2 busy shared vCPUs (benchmarks/generate_throughput.py, 2026-11-29) two
    threads changed end-to-end images/s by −18 % to +26 % over three runs, within the noise;
    a machine with idle cores may gain.
    """
    explicit = os.environ.get(FINISH_THREADS_ENV, "")
    return int(explicit) if explicit.isdigit() and int(explicit) > 0 else 1


class _Serial:
    """`ThreadPoolExecutor.map` without threads (one thread asked for, or one item)."""

    def map(self, function: Callable[..., T], *iterables: Iterable[Any]) -> Iterator[T]:
        return map(function, *iterables)


@contextmanager
def _pool(threads: int) -> Iterator[ThreadPoolExecutor | _Serial]:
    if threads <= 1:
        yield _Serial()
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="genloop-finish") as pool:
        yield pool

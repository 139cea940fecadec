"""From a sampled artifact to the bytes of a published-ready file, under a channel's policy.

    post-process chain → safety checks → labels → FinishedItem(bytes, verdicts, status, timings)

`ChannelPlan` is built once per generation job (processors, checks and keys are loaded
once), then `finish` runs per item. Items that fail a check, or every item when the
channel says `review = "always"`, get status "review": nothing reaches publication
without passing the checks or a person's approval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from genloop.config import GenloopConfig, LabelConfig
from genloop.generate.artifact import Artifact
from genloop.generate.labels.apply import LabelContext, apply_labels
from genloop.generate.postprocess.registry import Processor, build_chain, run_chain
from genloop.generate.safety.registry import SafetyCheck, SafetyContext, Verdict, build_checks, run_checks

ItemStatus = Literal["ready", "review"]


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
        timings: dict[str, float] = {}
        start = time.perf_counter()
        artifact = run_chain(self.chain, artifact)
        timings["postprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        verdicts = run_checks(self.checks, artifact, self.safety_context)
        timings["safety"] = time.perf_counter() - start
        start = time.perf_counter()
        labelled = apply_labels(artifact, self.labels, self.label_context)
        timings["label"] = time.perf_counter() - start
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

"""The ad-copy studio over a workspace: ranked lines per product (training: training.py).

    write_copy          products → refuse impossible constraints → per product: enforce
                        (candidates.py) → rank (ranker.py) → the channel's post-processing, then
                        constraints re-checked → safety checks → labels (visible AI mark + signed
                        GB 45438 front matter) → content items with lineage (generate/store.py)

A candidate is stored only once every constraint and every safety check has passed; the rows
carry the model version, the prompt, the seed, the sampling parameters and the repairs made.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genloop.apps.adcopy.candidates import Candidate, enforce, lengths
from genloop.apps.adcopy.constraints import impossible_report, violations
from genloop.apps.adcopy.generator import CopyModel, product_prompt, sampling_params
from genloop.apps.adcopy.products import Product
from genloop.apps.adcopy.ranker import LearnedPreference, rank
from genloop.apps.adcopy.training import MODEL_NAME, app_dir
from genloop.catalog import Catalog
from genloop.errors import GenloopError, NotFoundError
from genloop.generate.artifact import Artifact
from genloop.generate.finish import ChannelPlan, FinishedItem
from genloop.generate.jobs import ChunkResult
from genloop.generate.labels.apply import LabelContext
from genloop.generate.postprocess.registry import run_chain
from genloop.generate.requests import ItemPlan, ItemSpec
from genloop.generate.safety.registry import SafetyContext
from genloop.generate.store import store_results
from genloop.storage import stable_hash
from genloop.train.device import use_available_cpus
from genloop.workspace import Workspace

CHANNEL = "adcopy"
PRODUCER = "genloop adcopy"


class ImpossibleConstraints(GenloopError):
    """Some products ask for what no line can be; `reasons` holds {product id: [why, ...]}."""

    def __init__(self, reasons: dict[str, list[str]], where: dict[str, str]) -> None:
        lines = [f"{where.get(pid, pid)} product {pid!r}: {'; '.join(why)}" for pid, why in reasons.items()]
        super().__init__(
            f"{len(reasons)} product(s) have constraints no line can meet:\n  " + "\n  ".join(lines),
            hint="fix must_include / banned / max_length of those products, or pass --skip-impossible "
            "to write copy for the others only",
        )
        self.reasons = reasons


# ---- writing copy -------------------------------------------------------------------------------


@dataclass
class Line:
    rank: int
    text: str
    score: float
    parts: dict[str, float]
    candidate: Candidate
    content_id: str = ""
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "text": self.text,
            "score": round(self.score, 4),
            "parts": {k: round(v, 4) for k, v in self.parts.items()},
            "repairs": self.candidate.repairs,
            "raw": self.candidate.raw,
            "seed": self.candidate.seed,
            "content_id": self.content_id,
            "path": str(self.path) if self.path else None,
        }


@dataclass
class ProductCopy:
    product: Product
    model_version: str
    prompt: str
    params: dict[str, Any]
    lines: list[Line]
    sampled: int
    dropped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    impossible: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product.to_json(),
            "model_version": self.model_version,
            "prompt": self.prompt,
            "params": self.params,
            "lines": [line.to_json() for line in self.lines],
            "sampled": self.sampled,
            "dropped": dict(self.dropped),
            "seconds": round(self.seconds, 3),
            "impossible": self.impossible,
        }


def load_copy_model(workspace: Workspace, catalog: Catalog, reference: str) -> CopyModel:
    try:
        return CopyModel.load(workspace, catalog, reference)
    except NotFoundError as exc:
        raise NotFoundError(
            f"no ad-copy model {reference!r} in {workspace.root} ({exc.message})",
            hint="train one first: genloop adcopy train  (or --copy your_past_copy.csv)",
        ) from None


@dataclass
class Finisher:
    """The channel's post-processing, safety checks and labels, and the content store."""

    workspace: Workspace
    catalog: Catalog
    model: CopyModel
    plan: ChannelPlan
    store: bool

    @classmethod
    def build(cls, workspace: Workspace, catalog: Catalog, model: CopyModel, *, store: bool) -> Finisher:
        plan = ChannelPlan.build(
            workspace.config,
            channel=CHANNEL,
            modality="text",
            safety_context=SafetyContext(workspace, catalog, model.version_id),
            label_context=LabelContext(workspace, PRODUCER, model.version_id),
        )
        return cls(workspace, catalog, model, plan, store)

    def finish(
        self, product: Product, result: ProductCopy, candidate: Candidate, rank: int = 0, score: float = 0.0
    ) -> Line | None:
        """The stored line (its rank and score stored with it), or None (counted in `result.dropped`)
        when post-processing broke a constraint or a safety check failed."""
        condition = {"app": "adcopy", "product": product.id, "prompt": result.prompt}
        content_id = stable_hash(
            {"model": self.model.version_id, "condition": condition, "seed": candidate.seed,
             "params": result.params, "text": candidate.text, "channel": CHANNEL},
            32,
        )  # fmt: skip
        meta = {"model_version": self.model.version_id, "condition": condition, "seed": candidate.seed}
        artifact = run_chain(self.plan.chain, Artifact(content_id, "text", candidate.text, "txt", meta=meta))
        problems = violations(artifact.text, product)
        if problems:
            result.dropped["channel post-processing broke " + "+".join(p.kind for p in problems)] += 1
            return None
        finished = dataclasses.replace(self.plan, chain=[]).finish(artifact)
        failed = [verdict.check for verdict in finished.verdicts if not verdict.passed]
        if failed:
            result.dropped[f"safety: {', '.join(failed)}"] += 1
            return None
        line = Line(rank, artifact.text, score, {}, candidate, content_id)
        if self.store:
            line.path = self._store(product, result, line, finished, condition)
        return line

    def _store(
        self,
        product: Product,
        result: ProductCopy,
        line: Line,
        finished: FinishedItem,
        condition: dict[str, Any],
    ) -> Path:
        candidate = line.candidate
        stored_condition = {
            **condition,
            "line": line.text,
            "rank": line.rank,
            "score": round(line.score, 4),
            "repairs": candidate.repairs,
            "raw": candidate.raw,
        }
        params = {**result.params, "constraints": product.to_json()}
        plan = ItemPlan(
            self.model.version_id,
            self.model.family,
            "text",
            stable_hash(
                {"model": self.model.version_id, "product": product.to_json(), "prompt": result.prompt}, 32
            ),
            params,
            [],
        )
        spec = ItemSpec(line.content_id, stored_condition, 0, candidate.seed)
        [(_, path)] = store_results(
            self.workspace, self.catalog, plan, CHANNEL, [ChunkResult(spec, finished, 0.0)]
        )
        return path


def write_copy(
    workspace: Workspace,
    catalog: Catalog,
    products: list[Product],
    *,
    n: int = 10,
    model: str = MODEL_NAME,
    seed: int = 0,
    skip_impossible: bool = False,
    store: bool = True,
    temperature: float = 0.9,
    on_product: Callable[[ProductCopy], None] | None = None,
) -> list[ProductCopy]:
    """Up to `n` ranked lines per product, each satisfying every constraint of its product.

    `on_product` is called after each product (a job reports progress there, and stops the
    run between products by raising); the model is loaded once for all of them."""
    if n < 1:
        raise GenloopError(f"-n must be ≥ 1 (got {n})")
    use_available_cpus()  # GENLOOP_NUM_THREADS, as training honours it
    reasons = impossible_report(products)
    if reasons and not skip_impossible:
        raise ImpossibleConstraints(reasons, {p.id: p.where for p in products})
    copy_model = load_copy_model(workspace, catalog, model)
    finisher = Finisher.build(workspace, catalog, copy_model, store=store)
    preference = LearnedPreference.load(app_dir(workspace))
    results = []
    for product in products:
        prompt = product_prompt(product)
        params = copy_model.fit_budget(prompt, sampling_params(product, copy_model.family, temperature))
        if product.id in reasons:
            result = ProductCopy(
                product, copy_model.version_id, prompt, params, [], 0, impossible=reasons[product.id]
            )
        else:
            result = _write_one(copy_model, finisher, preference, product, n, prompt, params, seed)
        results.append(result)
        if on_product is not None:
            on_product(result)
    return results


def _write_one(
    model: CopyModel,
    finisher: Finisher,
    preference: LearnedPreference,
    product: Product,
    n: int,
    prompt: str,
    params: dict[str, Any],
    seed: int,
) -> ProductCopy:
    start = time.perf_counter()
    enforced = enforce(model, product, n=n, prompt=prompt, params=params, seed=seed)
    result = ProductCopy(product, model.version_id, prompt, params, [], enforced.sampled, enforced.dropped)
    valid = enforced.valid
    ranked = rank(
        [c.text for c in valid],
        log_likelihoods=model.log_likelihood(prompt, [c.text for c in valid]),
        lengths=lengths(valid, product),
        repairs=[c.repair_count for c in valid],
        max_length=product.max_length,
        attributes=product.attributes(),
        preference=preference,
    )
    by_text = {c.text: c for c in valid}
    for scored in ranked:
        if len(result.lines) >= n:
            break
        line = finisher.finish(product, result, by_text[scored.text], len(result.lines) + 1, scored.score)
        if line is not None:
            line.parts = {**scored.parts, "novelty": scored.novelty}
            result.lines.append(line)
    result.seconds = time.perf_counter() - start
    return result

"""Constraint enforcement: over-generate, repair, re-check, drop — every kept line satisfies its product.

    round r:  sample oversample·N raw lines (item seeds from (seed, product id, index))
              → repair.repair (clean, banned words out, fitted with the required words)
              → constraints.violations: any left → dropped, the reason counted
              → exact duplicates (any case) → dropped, counted
    until ≥ N distinct valid lines, or `max_rounds` rounds (then fewer, and the counts say why)

Nothing reaches the ranker that `violations` has not just passed; the caller re-checks again
after the channel's post-processing, so a constraint is never broken silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from genloop.apps.adcopy.constraints import length_of, violations
from genloop.apps.adcopy.generator import CopyModel
from genloop.apps.adcopy.products import Product
from genloop.apps.adcopy.repair import repair
from genloop.generate.requests import item_seed

OVERSAMPLE = 3
MAX_ROUNDS = 4


@dataclass
class Candidate:
    text: str
    raw: str
    """What the model wrote, before any repair."""
    seed: int
    repairs: list[str]

    @property
    def repair_count(self) -> int:
        return sum(1 for step in self.repairs if step != "cleaned")

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "raw": self.raw, "seed": self.seed, "repairs": self.repairs}


@dataclass
class Enforced:
    product: Product
    prompt: str
    params: dict[str, Any]
    valid: list[Candidate]
    sampled: int
    dropped: Counter[str] = field(default_factory=Counter)
    """Reason → count: a violation kind, "duplicate", "no generated words left", …"""
    repaired: int = 0


def drop_reason(problems: list[Any]) -> str:
    return "still " + "+".join(sorted({problem.kind for problem in problems}))


def enforce(
    model: CopyModel,
    product: Product,
    *,
    n: int,
    prompt: str,
    params: dict[str, Any],
    seed: int = 0,
    oversample: int = OVERSAMPLE,
    max_rounds: int = MAX_ROUNDS,
) -> Enforced:
    """At least `n` distinct lines that satisfy `product` when the model can make them (see above)."""
    result = Enforced(product, prompt, params, [], 0)
    seen: set[str] = set()
    batch = max(1, oversample * n)
    for round_index in range(max_rounds):
        seeds = [item_seed(seed, product.id, round_index * batch + i) for i in range(batch)]
        for raw, item in zip(model.sample(prompt, seeds, params), seeds, strict=True):
            result.sampled += 1
            fixed = repair(raw, product)
            if not fixed.generated_kept:
                result.dropped["no generated words left"] += 1
                continue
            problems = violations(fixed.text, product)
            if problems:
                result.dropped[drop_reason(problems)] += 1
                continue
            key = " ".join(fixed.text.lower().split())
            if key in seen:
                result.dropped["duplicate"] += 1
                continue
            seen.add(key)
            result.repaired += any(step != "cleaned" for step in fixed.steps)
            result.valid.append(Candidate(fixed.text, raw, item, fixed.steps))
        if len(result.valid) >= n:
            break
    return result


def lengths(candidates: list[Candidate], product: Product) -> list[int]:
    return [length_of(candidate.text, product.language) for candidate in candidates]

"""A simulated support agent: it knows the right answer to each query and judges pre-replies by it.

    key facts(answer)  the answer's content terms (`tokens.terms`): English words of 3+ letters
                       that are not stop words, digits, and Chinese character bigrams
    coverage           |key facts found in the pre-reply body| / |key facts|
    decision           accept when coverage ≥ `threshold` (default 0.8), else edit: the agent
                       replaces the pre-reply with the right answer (what a real agent would type)

An answer with no key facts ("Yes.") is judged by containment of the whole answer text.
This is the "simulated agent" of issue #9's measure: acceptance rate = accepted / judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genloop.apps.support.tokens import ENGLISH_STOPWORDS, HAN, terms

THRESHOLD = 0.8
_HAN_CHAR = re.compile(f"[{HAN}]")


def key_facts(answer: str) -> set[str]:
    facts = set()
    for term in terms(answer):
        if _HAN_CHAR.search(term) or term.isdigit() or (len(term) >= 3 and term not in ENGLISH_STOPWORDS):
            facts.add(term)
    return facts


def fact_coverage(text: str, answer: str) -> float:
    """The share of `answer`'s key facts found in `text` (containment when it has none).

    Also the LM generator's guard rail (generator.py): a reply must not lose the answer's facts.
    """
    facts = key_facts(answer)
    if facts:
        return len(facts & set(terms(text))) / len(facts)
    return 1.0 if answer.strip().lower() in text.lower() else 0.0


@dataclass(frozen=True)
class Judgement:
    decision: str
    """accept | edit"""
    coverage: float
    reply: str | None
    """edit: the corrected reply (the right answer); accept: None."""


@dataclass(frozen=True)
class SimulatedAgent:
    threshold: float = THRESHOLD

    def judge(self, pre_reply: str, right_answer: str) -> Judgement:
        coverage = fact_coverage(pre_reply, right_answer)
        if coverage >= self.threshold:
            return Judgement("accept", round(coverage, 4), None)
        return Judgement("edit", round(coverage, 4), right_answer)

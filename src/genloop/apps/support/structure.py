"""Query → structured data: language, intent and slots.

    language   py3langid, the clean stage's identifier (`IdentifyLanguage`); a query with more
               Han characters than Latin words is Chinese whatever langid says (short mixed
               queries such as "iPhone 退货" are where langid is least sure)
    intent     the workspace's `IntentClassifier` (trained on the knowledge base's tickets)
    slots      `slots.extract_slots`: rules plus the data stage's PII detectors

The query is normalised first as the clean stage does (NFKC: full-width １３８ → 138, so the
PII detectors see ASCII digits).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genloop.apps.support.intent import IntentClassifier
from genloop.apps.support.slots import BUILTIN_PRODUCTS, ORDER, Slot, extract_slots
from genloop.data.steps.text import normalize_text
from genloop.data.steps.text_quality import _language_identifier
from genloop.errors import DataError
from genloop.generate.postprocess.text import is_chinese

MAX_QUERY_CHARS = 4000


@dataclass(frozen=True)
class StructuredQuery:
    text: str
    """The normalised query (may hold PII: never shown as is)."""
    language: str
    language_score: float
    intent: str
    intent_confidence: float
    slots: list[Slot]

    @property
    def retrieval_text(self) -> str:
        """The query without its PII and order ids: they name the customer, not the problem, and
        their tokens ("order", digits) otherwise pull in unrelated answers."""
        kept, position = [], 0
        for slot in self.slots:
            if slot.is_pii or slot.type == ORDER:
                kept.append(self.text[position : slot.start])
                position = slot.end
        kept.append(self.text[position:])
        return " ".join("".join(kept).split())

    def to_json(self, *, include_pii: bool = False) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_score": self.language_score,
            "intent": self.intent,
            "intent_confidence": self.intent_confidence,
            "slots": [slot.to_json(include_pii=include_pii) for slot in self.slots],
        }


def clean_query(query: str) -> str:
    """The normalised query; a DataError for an empty or oversized one."""
    if not isinstance(query, str):
        raise DataError(f"a query is text, not {type(query).__name__}", hint='ask: genloop support ask "…"')
    text = normalize_text(query)
    if not text:
        raise DataError("the query is empty", hint='give the customer\'s message: genloop support ask "…"')
    if len(text) > MAX_QUERY_CHARS:
        raise DataError(
            f"the query has {len(text)} characters (at most {MAX_QUERY_CHARS})",
            hint="send one customer message at a time",
        )
    return text


def identify_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability): py3langid, with Chinese decided by script first."""
    if is_chinese(text):
        return "zh", 1.0
    code, score = _language_identifier().classify(text)
    return str(code), round(float(score), 3)


def structure_query(
    query: str, intents: IntentClassifier, products: Iterable[str] = BUILTIN_PRODUCTS
) -> StructuredQuery:
    text = clean_query(query)
    language, score = identify_language(text)
    [prediction] = intents.predict([text])
    return StructuredQuery(
        text=text,
        language=language,
        language_score=score,
        intent=prediction.intent,
        intent_confidence=prediction.confidence,
        slots=extract_slots(text, products),
    )

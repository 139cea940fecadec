"""The app's numbers: intent accuracy, slot F1, retrieval hit@1 / hit@5.

intent accuracy   on the held-out entries' questions (never seen in training)
slot F1           micro-averaged over (type, normalised value) pairs of a labelled set:
                  P = |pred ∩ gold| / |pred|, R = |pred ∩ gold| / |gold|, F1 = 2PR / (P + R)
                  (multisets: a value marked twice must be found twice)
hit@k             held-out questions → their own entry (indexed by its answer only), and,
                  for the built-in corpus, hand-written paraphrases → the paraphrased entry
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genloop.apps.support.app import SupportApp
from genloop.apps.support.labelled import PARAPHRASES, SLOT_EXAMPLES
from genloop.apps.support.retrieve import hit_at_k
from genloop.apps.support.slots import SLOT_TYPES, extract_slots
from genloop.errors import DataError

SlotExample = tuple[str, Sequence[tuple[str, str]]]


def intent_accuracy(app: SupportApp) -> dict[str, Any]:
    heldout = [entry for entry in app.entries if entry.split == "heldout"]
    if not heldout:
        return {"accuracy": None, "n": 0, "majority_baseline": None}
    predictions = app.intents.predict([entry.question for entry in heldout])
    correct = sum(p.intent == e.intent for p, e in zip(predictions, heldout, strict=True))
    train_counts = Counter(entry.intent for entry in app.entries if entry.split == "train")
    majority = train_counts.most_common(1)[0][0] if train_counts else ""
    return {
        "accuracy": correct / len(heldout),
        "n": len(heldout),
        "majority_baseline": sum(entry.intent == majority for entry in heldout) / len(heldout),
    }


def slot_f1(examples: Sequence[SlotExample], products: Sequence[str] | None = None) -> dict[str, Any]:
    true_positives = predicted = gold_total = 0
    per_type: dict[str, Counter[str]] = {kind: Counter() for kind in SLOT_TYPES}
    for text, gold in examples:
        found = extract_slots(text, products) if products is not None else extract_slots(text)
        pred_counts = Counter((slot.type, slot.value) for slot in found)
        gold_counts = Counter((kind, value) for kind, value in gold)
        hits = pred_counts & gold_counts
        true_positives += sum(hits.values())
        predicted += sum(pred_counts.values())
        gold_total += sum(gold_counts.values())
        for (kind, _), n in hits.items():
            per_type[kind]["tp"] += n
        for (kind, _), n in pred_counts.items():
            per_type[kind]["pred"] += n
        for (kind, _), n in gold_counts.items():
            per_type.setdefault(kind, Counter())["gold"] += n
    return {
        **_prf(true_positives, predicted, gold_total),
        "examples": len(examples),
        "per_type": {kind: _prf(c["tp"], c["pred"], c["gold"]) for kind, c in per_type.items() if c},
    }


def _prf(tp: int, predicted: int, gold: int) -> dict[str, float | int]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "gold": gold}


def read_slot_examples(path: Path) -> list[SlotExample]:
    """A JSONL slot set: {"text": "...", "slots": [["ORDER", "A12345"], ...]} per line."""
    examples: list[SlotExample] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append((str(row["text"]), [(str(kind), str(value)) for kind, value in row["slots"]]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{path}:{number}: not a slot example ({exc})",
                hint='one JSON object a line: {"text": "...", "slots": [["ORDER", "A12345"]]}',
            ) from None
    return examples


def retrieval_queries(app: SupportApp) -> dict[str, list[tuple[str, str]]]:
    """Query sets with their gold entry id: held-out questions, and paraphrases when they apply."""
    sets = {"heldout": [(e.question, e.id) for e in app.entries if e.split == "heldout"]}
    by_question = {entry.question: entry.id for entry in app.entries}
    paraphrases = [(text, by_question[original]) for text, original in PARAPHRASES if original in by_question]
    if paraphrases:
        sets["paraphrases"] = paraphrases
    return sets


def evaluate_app(app: SupportApp, slot_examples: Sequence[SlotExample] = SLOT_EXAMPLES) -> dict[str, Any]:
    retrieval: dict[str, Any] = {}
    for name, queries in retrieval_queries(app).items():
        retrieval[name] = {"n": len(queries), "chance@5": min(1.0, 5 / max(len(app.entries), 1))}
        for mode in app.index.available_modes():
            retrieval[name][mode] = hit_at_k(app.index, queries, (1, 5), mode)
    return {
        "version": app.version,
        "entries": len(app.entries),
        "embeddings": app.index.encoder,
        "intent": intent_accuracy(app),
        "slots": slot_f1(slot_examples, app.products),
        "retrieval": retrieval,
    }

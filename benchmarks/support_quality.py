"""Support pre-replies (issue #9, first slice): intent accuracy, slot F1, retrieval hit@1 / hit@5.

Builds the support app from the built-in chatterbot-corpus (English + Chinese) in a scratch
workspace and measures, side by side on the same entries and queries:

    intent accuracy   held-out questions (20 % by stable hash), vs the majority-class baseline
    slot F1           the hand-labelled set in genloop.apps.support.labelled (28 messages)
    hit@1 / hit@5     held-out questions (indexed by their answer only) and 24 hand-written
                      paraphrases; BM25 (the reference) vs MiniLM, e5, and MiniLM for English +
                      e5 for Chinese (`auto`), and the BM25 + embeddings reciprocal-rank fusion

    .venv/bin/python benchmarks/support_quality.py [--embeddings minilm e5 minilm+e5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from genloop.apps.support.app import build_support
from genloop.apps.support.evaluation import evaluate_app, retrieval_queries
from genloop.apps.support.retrieve import SupportIndex, hit_at_k, is_chinese
from genloop.errors import GenloopError
from genloop.models.text_encoders import TEXT_ENCODERS
from genloop.workspace import Workspace

CONFIG = '[project]\nname = "support-bench"\n'


def _by_language(queries: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """English and Chinese queries apart (MiniLM serves English only; Chinese falls back to BM25)."""
    return {
        "en": [(q, gold) for q, gold in queries if not is_chinese(q)],
        "zh": [(q, gold) for q, gold in queries if is_chinese(q)],
    }


def _retrieval_with(app: Any, encoder: str) -> dict[str, Any]:
    """hit@k of one embedding backend on the app's entries (and its BM25 + fusion)."""
    started = time.perf_counter()
    index = SupportIndex.build(app.entries, encoder)
    built = time.perf_counter() - started
    results: dict[str, Any] = {"index_build_s": round(built, 1)}
    for name, queries in retrieval_queries(app).items():
        results[name] = {mode: hit_at_k(index, queries, (1, 5), mode) for mode in ("embeddings", "hybrid")}
        for language, subset in _by_language(queries).items():
            results[name][f"{language}:n"] = len(subset)
            for mode in ("bm25", "embeddings"):
                results[name][f"{language}:{mode}"] = hit_at_k(index, subset, (1, 5), mode)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--embeddings", nargs="*", default=["minilm", "e5", "minilm+e5"], help="backends to compare"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
        started = time.perf_counter()
        app = build_support(Workspace(root), embeddings="none")
        report: dict[str, Any] = {"build_bm25_s": round(time.perf_counter() - started, 1)}
        report.update(evaluate_app(app))
        report["embeddings"] = {}
        for encoder in args.embeddings:
            try:
                for name in encoder.split("+"):
                    TEXT_ENCODERS[name].check_available()
            except GenloopError as exc:
                report["embeddings"][encoder] = {"skipped": exc.message}
                continue
            report["embeddings"][encoder] = _retrieval_with(app, encoder)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

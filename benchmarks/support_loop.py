"""Support pre-replies (#9): acceptance by a simulated agent before and after two rounds of agent edits.

The scenario: a team whose knowledge base misses some answers. Built from chatterbot-corpus
(English + Chinese), minus the entries of the 24 questions that `labelled.PARAPHRASES` rewords
("unknown problems": the team has no answer for them yet). Each round, customers ask; every
query goes through the real path — `queue.submit` (catalog ticket), the simulated agent
(`simulated_agent.py`: accept when the pre-reply holds ≥ 80 % of the right answer's key facts,
else edit it to the right answer, confirming the right intent), `queue.decide` (like / edit
feedback events) — and then `improve.improve_support` retrains the intent model, rebuilds the
index and registers the next `support-vN`.

Queries used for edits are never the queries measured:

    edit rounds     round 1: the original corpus questions of half the unknown problems (12) +
                             half of edit pool A; round 2: the other halves
                    edit pool A = held-out corpus questions with sha256 % 2 == 0
    measured        recurring: the 24 hand-written paraphrases of the unknown problems' questions
                               (different wording of problems agents answered; never submitted)
                    control:   held-out corpus questions with sha256 % 2 == 1 (pool B: problems no
                               agent touched; their answers are in the knowledge base)

Acceptance is measured with `SupportApp.ask` (nothing stored), before any edit and after each
improvement round.

    .venv/bin/python benchmarks/support_loop.py [--embeddings none|auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from genloop.apps.support.app import SupportApp, build_support
from genloop.apps.support.improve import improve_support
from genloop.apps.support.knowledge import Entry, corpus_entries
from genloop.apps.support.labelled import PARAPHRASES
from genloop.apps.support.queue import decide, submit
from genloop.apps.support.retrieve import is_chinese
from genloop.apps.support.simulated_agent import SimulatedAgent
from genloop.catalog import Catalog, open_catalog
from genloop.workspace import Workspace

CONFIG = '[project]\nname = "support-loop-bench"\n'
Query = tuple[str, Entry]  # (what the customer writes, the entry whose answer is right)


def _half(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 2


def knowledge_file(path: Path, entries: list[Entry]) -> Path:
    """The team's knowledge base as a ticket file (ids, intents and languages kept)."""
    rows = [
        {"id": e.id, "question": e.question, "answer": e.answer, "intent": e.intent, "language": e.language}
        for e in entries
    ]
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def acceptance(app: SupportApp, queries: list[Query], agent: SimulatedAgent) -> dict[str, Any]:
    judged = [agent.judge(app.ask(text).reply.body, entry.answer) for text, entry in queries]
    accepted = sum(j.decision == "accept" for j in judged)
    by_language = {}
    for language in ("en", "zh"):
        subset = [
            j for j, (text, _) in zip(judged, queries, strict=True) if is_chinese(text) == (language == "zh")
        ]
        if subset:
            by_language[language] = {
                "n": len(subset),
                "rate": round(sum(j.decision == "accept" for j in subset) / len(subset), 4),
            }
    return {
        "n": len(queries),
        "accepted": accepted,
        "rate": round(accepted / max(len(queries), 1), 4),
        **by_language,
    }


def agent_round(
    workspace: Workspace, catalog: Catalog, app: SupportApp, queries: list[Query], agent: SimulatedAgent
) -> dict[str, int]:
    counts = {"accept": 0, "edit": 0}
    for text, entry in queries:
        ticket = submit(workspace, catalog, app, text, actor="bench:intake")
        judgement = agent.judge(ticket.pre_reply, entry.answer)
        counts[judgement.decision] += 1
        decide(
            catalog,
            ticket.id,
            judgement.decision,
            actor="bench:simulated-agent",
            text=judgement.reply,
            intent=entry.intent,
        )
    return counts


def run(embeddings: str) -> dict[str, Any]:
    agent = SimulatedAgent()
    entries = corpus_entries()
    by_question = {e.question: e for e in entries}
    unknown = {original: by_question[original] for _, original in PARAPHRASES if original in by_question}
    known = [e for e in entries if e.question not in unknown]
    heldout = [e for e in known if e.split == "heldout"]
    pool_a = [e for e in heldout if _half(e.question) == 0]
    pool_b = [e for e in heldout if _half(e.question) == 1]
    originals = sorted(unknown.values(), key=lambda e: hashlib.sha256(e.question.encode()).hexdigest())
    rounds = [
        [(e.question, e) for e in originals[: len(originals) // 2]] + [(e.question, e) for e in pool_a[::2]],
        [(e.question, e) for e in originals[len(originals) // 2 :]] + [(e.question, e) for e in pool_a[1::2]],
    ]
    measured = {
        "recurring": [(text, unknown[original]) for text, original in PARAPHRASES if original in unknown],
        "control": [(e.question, e) for e in pool_b],
    }
    edited_texts = {text for batch in rounds for text, _ in batch}
    if any(text in edited_texts for queries in measured.values() for text, _ in queries):
        raise SystemExit("a measured query is also an edit query: the split is broken")
    report: dict[str, Any] = {
        "knowledge_base": len(known),
        "unknown_problems": len(unknown),
        "edit_queries_per_round": [len(batch) for batch in rounds],
        "measured": {name: len(queries) for name, queries in measured.items()},
        "embeddings": embeddings,
        "rounds": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
        workspace = Workspace(root)
        catalog = open_catalog(workspace.database_url)
        started = time.perf_counter()
        app = build_support(
            workspace, tickets=knowledge_file(root / "kb.jsonl", known), embeddings=embeddings
        )
        report["build_s"] = round(time.perf_counter() - started, 1)
        report["rounds"].append({"round": 0, **{k: acceptance(app, q, agent) for k, q in measured.items()}})
        for number, batch in enumerate(rounds, start=1):
            started = time.perf_counter()
            decisions = agent_round(workspace, catalog, app, batch, agent)
            improved = improve_support(workspace, catalog)
            app = improved.app
            report["rounds"].append(
                {
                    "round": number,
                    "model_version": improved.model_version_id,
                    "edit_round_decisions": decisions,
                    "learned_entries": improved.edited + improved.accepted,
                    "seconds": round(time.perf_counter() - started, 1),
                    **{k: acceptance(app, q, agent) for k, q in measured.items()},
                }
            )
        report["embeddings_used"] = app.index.encoder
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embeddings", default="none", help="none (BM25) or auto / minilm / e5 / minilm+e5")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    text = json.dumps(run(args.embeddings), indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

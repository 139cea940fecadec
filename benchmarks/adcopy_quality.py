"""Ad-copy studio (issue #9): constraint satisfaction, diversity and latency per product on CPU.

Trains the copy model (genloop's GPT) on the built-in past-copy stand-in in a scratch workspace
(or uses --workspace, trained before with `genloop adcopy train`), then writes `-n` lines for
each product of the built-in sample (6 English, 6 Chinese) and reports:

    satisfaction   emitted lines with no violation, by the studio's own checker (goal: 100 %)
    raw            the model's lines that met every constraint before any repair (for context)
    fill           lines emitted / lines asked for (a product can get fewer when its candidates
                   keep breaking constraints)
    distinct-2     unique token bigrams / all bigrams over one product's lines (words for English,
                   characters for Chinese), averaged over products
    latency        seconds per product for n lines (sample, repair, rank, safety, labels, store),
                   with GENLOOP_NUM_THREADS=1 and with the default threads

    .venv/bin/python benchmarks/adcopy_quality.py [--steps 400] [-n 10] [--workspace DIR] [--json out.json]
    .venv/bin/python benchmarks/adcopy_quality.py --family hf-causal-lm --steps 60   # SmolLM2 + LoRA

With --family hf-causal-lm the generator is SmolLM2-135M with a LoRA adapter trained on the
stand-in's English lines, and only the English products are written (it has no useful Chinese).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genloop.apps.adcopy.constraints import violations
from genloop.apps.adcopy.products import read_products
from genloop.apps.adcopy.ranker import tokens
from genloop.apps.adcopy.repair import clean
from genloop.apps.adcopy.standin import PRODUCTS
from genloop.apps.adcopy.studio import ProductCopy, write_copy
from genloop.apps.adcopy.training import train_copy_model
from genloop.catalog import open_catalog
from genloop.workspace import Workspace

CONFIG = '[project]\nname = "adcopy-bench"\n'


def distinct_2(lines: list[str]) -> float:
    grams = [pair for line in lines for pair in zip(tokens(line), tokens(line)[1:], strict=False)]
    return len(set(grams)) / len(grams) if grams else 0.0


def measure(results: list[ProductCopy], n: int) -> dict[str, Any]:
    emitted = [(r.product, line.text, line.candidate.raw) for r in results for line in r.lines]
    satisfied = sum(not violations(text, product) for product, text, _ in emitted)
    raw_ok = sum(not violations(clean(raw), product) for product, _, raw in emitted)
    dropped: dict[str, int] = {}
    for r in results:
        for reason, count in r.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
    by_language = {
        language: [r for r in results if r.product.language == language] for language in ("en", "zh")
    }
    return {
        "lines": len(emitted),
        "asked": n * len(results),
        "satisfaction": satisfied / len(emitted) if emitted else None,
        "raw_satisfaction": raw_ok / len(emitted) if emitted else None,
        "fill": len(emitted) / (n * len(results)),
        "distinct_2": statistics.mean(distinct_2([line.text for line in r.lines]) for r in results),
        "distinct_2_by_language": {
            lang: statistics.mean(distinct_2([line.text for line in r.lines]) for r in rs)
            for lang, rs in by_language.items()
            if rs
        },
        "short": {r.product.id: len(r.lines) for r in results if len(r.lines) < n},
        "sampled": sum(r.sampled for r in results),
        "dropped": dropped,
        "seconds_per_product": {
            "mean": statistics.mean(r.seconds for r in results),
            "median": statistics.median(r.seconds for r in results),
            "max": max(r.seconds for r in results),
            **{
                f"mean_{lang}": statistics.mean(r.seconds for r in rs)
                for lang, rs in by_language.items()
                if rs
            },
        },
        "examples": {r.product.id: [line.text for line in r.lines[:3]] for r in results},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspace", type=Path, help="a workspace with a trained adcopy model")
    parser.add_argument("--steps", type=int, default=400, help="training steps (cpu preset) when training")
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--family", choices=("gpt", "hf-causal-lm"), default="gpt")
    parser.add_argument("--single-run", action="store_true", help="only the threads=1 run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.pop("GENLOOP_DATABASE_URL", None)
    load_before = os.getloadavg()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="adcopy-bench-"))
    if not (root / "genloop.toml").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
    workspace = Workspace(root)
    catalog = open_catalog(workspace.database_url)
    began = time.perf_counter()
    manifest = train_copy_model(workspace, catalog, family=args.family, preset="cpu", max_steps=args.steps)
    train_seconds = time.perf_counter() - began
    products = read_products(PRODUCTS)
    if args.family == "hf-causal-lm":
        products = [p for p in products if p.language == "en"]
    report: dict[str, Any] = {"model": manifest, "train_seconds": round(train_seconds, 1), "runs": {}}
    original = os.environ.get("GENLOOP_NUM_THREADS")
    runs = (("threads=1", "1", 1), ("threads=default", None, 2))
    for label, threads, seed in runs[:1] if args.single_run else runs:
        if threads is None:
            os.environ.pop("GENLOOP_NUM_THREADS", None)
        else:
            os.environ["GENLOOP_NUM_THREADS"] = threads
        results = write_copy(workspace, catalog, products, n=args.n, seed=seed)
        report["runs"][label] = measure(results, args.n)
    if original is not None:
        os.environ["GENLOOP_NUM_THREADS"] = original
    report["machine"] = (
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"machine: {platform.machine()}, {os.cpu_count()} vCPU, "
        f"load before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; torch threads default "
        f"{len(os.sched_getaffinity(0))}"
    )
    print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()

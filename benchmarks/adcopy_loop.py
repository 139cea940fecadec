"""Ad-copy studio (issue #9): does the like-rate rise under a simulated audience over two rounds?

Everything goes through the HTTP API (FastAPI TestClient on the real app, real API keys, a
real SQLite catalog): POST /api/v1/adcopy/generate, POST /api/v1/adcopy/publications with an
arm per round, the public GET /api/v1/publications + POST /api/v1/feedback the simulated
viewers use (genloop.feedback.simulate, the persona `short-cheerful` of feedback/personas.py:
appeal = cheerfulness (an English word lexicon, snownlp sentiment for Chinese) × shortness;
neither the ranker nor the generator ever sees that function, only likes and dislikes).

    round 0   champion + the unfitted ranker: N lines per product, all published (arm r0);
              the audience reacts; the like-rate reported is that of each product's top K
              (by the round's own rank) — the same selection size as the later rounds
    round 1   `fit-ranker` on the catalog's feedback, then N new lines per product (new seed)
              re-ranked by the fitted ranker; the top K published (arm r1-ranker)
    round 2   the generator improved by the loop's recipe (`adcopy improve`: sft on the liked
              lines → challenger), the ranker refitted; N new lines from the challenger, top K
              published (arm r2-ranker-RECIPE; `--recipe`, default sft)

The script also scores every generated line with the persona offline (the judge's view, never
sent to a model): the pool's mean appeal vs the published top K's tells the ranker's choice
apart from the luck of the pool. Each round's audience sees only that round's publications (the
newest ones), so rounds do not share position bias. Like-rate = likes / looks (impressions) over
the round's top-K publications.

    .venv/bin/python benchmarks/adcopy_loop.py --from-workspace /tmp/adbench2 [--json out.json]
    .venv/bin/python benchmarks/adcopy_loop.py --steps 400          # trains a model first
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from genloop.apps.adcopy.feedback import rows_from_catalog
from genloop.apps.adcopy.improve import improve_copy_model
from genloop.apps.adcopy.products import read_products
from genloop.apps.adcopy.ranker import LearnedPreference
from genloop.apps.adcopy.standin import PRODUCTS
from genloop.apps.adcopy.training import app_dir, train_copy_model
from genloop.catalog import open_catalog
from genloop.feedback.personas import ShortCheerful, ViewedItem
from genloop.feedback.simulate import AudienceConfig, simulate_audience
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.workspace import Workspace

CONFIG = '[project]\nname = "adcopy-bench"\n'
PER_REQUEST = 40


def product_json(product: Any) -> dict[str, Any]:
    data = product.to_json()
    data.pop("where", None)
    return dict(data)


def generate(
    client: TestClient, headers: dict[str, str], products: list[Any], n: int, seed: int, model: str
) -> list[dict[str, Any]]:
    per_call = max(1, PER_REQUEST // n)
    out: list[dict[str, Any]] = []
    for start in range(0, len(products), per_call):
        body = {
            "products": [product_json(p) for p in products[start : start + per_call]],
            "n": n,
            "seed": seed,
            "model": model,
        }
        response = client.post("/api/v1/adcopy/generate", json=body, headers=headers)
        response.raise_for_status()
        out += response.json()["products"]
    return out


def publish(
    client: TestClient, headers: dict[str, str], lines: list[dict[str, Any]], arm: str
) -> dict[str, str]:
    """content id → publication id."""
    items = [{"content_item_id": line["content_item_id"], "arm": arm} for line in lines]
    published: dict[str, str] = {}
    for start in range(0, len(items), 100):
        response = client.post(
            "/api/v1/adcopy/publications",
            json={"channel": "gallery", "items": items[start : start + 100]},
            headers=headers,
        )
        response.raise_for_status()
        published.update((row["content_item_id"], row["publication_id"]) for row in response.json()["items"])
    return published


def run_round(
    client: TestClient,
    headers: dict[str, str],
    products: list[Any],
    args: argparse.Namespace,
    index: int,
    model: str,
    arm: str,
    publish_all: bool,
) -> dict[str, Any]:
    start = time.perf_counter()
    results = generate(client, headers, products, args.n, seed=1000 * (index + 1), model=model)
    generate_seconds = time.perf_counter() - start
    top = [line for r in results for line in r["lines"] if line["rank"] <= args.top]
    shown = [line for r in results for line in r["lines"]] if publish_all else top
    published = publish(client, headers, shown, arm)
    persona = ShortCheerful(args.short)
    audience = AudienceConfig(
        viewers=args.viewers, items_per_viewer=len(published), seed=args.seed, attention=args.attention
    )
    report = simulate_audience(client, persona, audience, round=index, limit=len(published))
    top_publications = {published[line["content_item_id"]] for line in top}
    looks = sum(t.impressions for p, t in report.per_publication.items() if p in top_publications)
    likes = sum(t.likes for p, t in report.per_publication.items() if p in top_publications)
    all_looks = sum(t.impressions for t in report.per_publication.values())
    all_likes = sum(t.likes for t in report.per_publication.values())
    appeal_top = [report.per_publication[p].appeal for p in top_publications if p in report.per_publication]

    # the judge's view only (never sent to the models): the persona's appeal of every generated line,
    # so the ranker's choice (top K) can be told apart from the pool it chose from
    def appeal(text: str) -> float:
        return persona.appeal(ViewedItem("offline", "text", text.encode("utf-8"), 0))

    pool = [appeal(line["text"]) for r in results for line in r["lines"]]
    chosen = [appeal(line["text"]) for line in top]
    return {
        "round": index,
        "pool_mean_appeal": sum(pool) / len(pool) if pool else None,
        "top_k_mean_appeal": sum(chosen) / len(chosen) if chosen else None,
        "arm": arm,
        "model": results[0]["model_version"] if results else model,
        "lines_generated": sum(len(r["lines"]) for r in results),
        "published": len(published),
        "top_k_published": len(top_publications),
        "like_rate_top_k": likes / looks if looks else None,
        "likes_top_k": likes,
        "looks_top_k": looks,
        "like_rate_all_published": all_likes / all_looks if all_looks else None,
        "mean_hidden_appeal_top_k": sum(appeal_top) / len(appeal_top) if appeal_top else None,
        "events_sent": report.sent,
        "generate_seconds": round(generate_seconds, 1),
        "round_seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--from-workspace", type=Path, help="copy this workspace (with a trained adcopy model)"
    )
    parser.add_argument("--steps", type=int, default=400, help="training steps when no workspace is given")
    parser.add_argument("-n", type=int, default=8, help="lines generated per product per round")
    parser.add_argument("--top", type=int, default=3, help="lines per product published in rounds 1-2 (K)")
    parser.add_argument("--viewers", type=int, default=30)
    parser.add_argument(
        "--attention", type=float, default=200.0, help="position bias (large: every item is looked at)"
    )
    parser.add_argument("--short", type=int, default=40, help="the persona's 'short' in characters")
    parser.add_argument("--improve-steps", type=int, default=40)
    parser.add_argument(
        "--recipe", default="sft", choices=("auto", "sft", "dpo", "kto"), help="round 2's improvement recipe"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # simulated viewers react faster than people: the per-viewer feedback limit would only add sleeps
    os.environ.setdefault("GENLOOP_FEEDBACK_RATE_LIMIT", "off")

    scratch = Path(tempfile.mkdtemp(prefix="adcopy-loop-"))
    root = scratch / "ws"
    started = time.perf_counter()
    if args.from_workspace:
        shutil.copytree(args.from_workspace, root)
        workspace = Workspace(root)
    else:
        root.mkdir()
        (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
        workspace = Workspace(root)
        train_copy_model(workspace, open_catalog(workspace.database_url), preset="cpu", max_steps=args.steps)
    catalog = open_catalog(workspace.database_url)
    (app_dir(workspace) / "ranker.json").unlink(missing_ok=True)  # round 0: no learned preference
    products = read_products(PRODUCTS)
    key = create_api_key(catalog, name="adcopy-loop-bench", role="editor").secret
    headers = {"Authorization": f"Bearer {key}"}
    rounds = []
    with TestClient(create_app(workspace)) as client:
        rounds.append(run_round(client, headers, products, args, 0, "adcopy", "r0", publish_all=True))

        fitted = LearnedPreference.fit(rows_from_catalog(catalog))
        fitted.save(app_dir(workspace))
        rounds.append(run_round(client, headers, products, args, 1, "adcopy", "r1-ranker", publish_all=False))
        rounds[-1]["ranker_rows"] = fitted.rows

        start = time.perf_counter()
        outcome = improve_copy_model(
            workspace, catalog, recipe=args.recipe, steps=args.improve_steps, seed=args.seed, evaluate=False
        )
        improve_seconds = time.perf_counter() - start
        refitted = LearnedPreference.fit(rows_from_catalog(catalog))
        refitted.save(app_dir(workspace))
        rounds.append(
            run_round(
                client,
                headers,
                products,
                args,
                2,
                "adcopy@challenger",
                f"r2-ranker-{args.recipe}",
                publish_all=False,
            )
        )
        rounds[-1].update(
            ranker_rows=refitted.rows,
            improve_seconds=round(improve_seconds, 1),
            challenger=outcome.challenger,
            improve_examples=outcome.details.get("examples"),
        )

    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "threads": os.environ.get("GENLOOP_NUM_THREADS", "default"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rounds": rounds,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

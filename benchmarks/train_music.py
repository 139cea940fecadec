"""Claim: the music recipe at the `cpu` preset costs little over a bare PyTorch loop, and learns.

Side by side in one process, on the same real Bach chorales (music21's corpus, MIDI via
the `bach-chorales` source, 10% held out), the same `MusicTransformer` (the cpu preset's
4 layers × 128 wide, 256-token context), AdamW, batch size, step count and thread count:

* **genloop**: `genloop.train.train_model` with `preset = "cpu"` and `max_steps` — reading
  the dataset version, REMI tokenization, random windows seeded per step, warm-up/cosine,
  gradient clipping, held-out loss + a MIDI sample every `eval_every_steps` and at the end,
  checkpoints, catalog metrics, model version registration;
* **bare loop** (the reference): pieces already tokenized in memory, random windows, and
  `loss.backward(); clip; step()` — nothing else.

Runs alternate (genloop, bare, …) so drift on a shared machine hits both; the ratio of
medians of seconds per step is the result. It also prints the held-out loss (nats per
event token) of the genloop run against ln(vocabulary), the uniform guess. Usage::

    GENLOOP_NUM_THREADS=1 .venv/bin/python benchmarks/train_music.py [--chorales 100] [--steps 150]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genloop.catalog import open_catalog
from genloop.config import CollectConfig, TrainConfig
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.sources.music import bach_chorales
from genloop.models.music import MusicConfig, MusicTransformer
from genloop.models.music_tokens import MusicTokenizer
from genloop.models.registry import get_model_family
from genloop.train import resolve_train_config, train_model
from genloop.train.device import use_available_cpus
from genloop.train.recipes.music import split_options
from genloop.workspace import Workspace


def chorale_dataset(root: Path, count: int) -> tuple[Workspace, DatasetHandle]:
    root.mkdir()
    (root / "genloop.toml").write_text('[project]\nname = "chorales"\n', encoding="utf-8")
    workspace = Workspace(root)
    cfg = CollectConfig(source="bach-chorales", modality="music", limit=count, test_fraction=0.1)
    records = list(bach_chorales(workspace, cfg, []))
    catalog = open_catalog(workspace.database_url)
    dataset = write_dataset_version(
        workspace, catalog, records, name="chorales", stage="annotate", classes=["major", "minor"]
    )
    return workspace, dataset


def bare_loop(pieces: list[torch.Tensor], labels: list[int], cfg: TrainConfig, config: MusicConfig) -> float:
    """Seconds per step of a hand-written loop over the same model and window size."""
    torch.manual_seed(cfg.seed)
    model = MusicTransformer.build(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    T, pad = config.block_size, model.tokenizer.pad_id
    steps = cfg.max_steps or 1
    started = time.perf_counter()
    for _ in range(steps):
        inputs = torch.full((cfg.batch_size, T), pad)
        targets = torch.full((cfg.batch_size, T), pad)
        for row, index in enumerate(
            torch.randint(len(pieces), (cfg.batch_size,), generator=generator).tolist()
        ):
            piece = pieces[index]
            start = int(torch.randint(max(1, len(piece) - T + 1), (1,), generator=generator))
            events = piece[start : start + T]
            inputs[row, 0] = model.events + labels[index]
            inputs[row, 1 : len(events)] = events[:-1]
            targets[row, : len(events)] = events
        loss = model.loss(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or 1.0)
        optimizer.step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chorales", type=int, default=100)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    use_available_cpus()
    get_model_family("music")  # the registry imports every installed family once: not training time
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        workspace, dataset = chorale_dataset(Path(tmp) / "ws", args.chorales)
        print(
            f"{args.chorales} chorales converted to MIDI in {time.perf_counter() - started:.1f}s", flush=True
        )
        cfg = resolve_train_config(TrainConfig(family="music", preset="cpu", max_steps=args.steps))
        cfg = cfg.model_copy(update={"eval_every_steps": max(1, args.steps // 3)})
        model_options, _ = split_options(cfg.model)
        config = MusicConfig.from_options(model_options, classes=["major", "minor"])
        tokenizer = MusicTokenizer()
        train = [r for r in dataset.iter_records("train")]
        pieces = [torch.tensor(tokenizer.encode(r.payload)) for r in train]
        labels = [config.classes.index(r.label or "major") for r in train]
        catalog = open_catalog(workspace.database_url)
        ours, reference, heldout = [], [], []
        for attempt in range(args.repeats):
            started = time.perf_counter()
            result = train_model(workspace, catalog, dataset, cfg, model_name=f"chorales{attempt}")
            ours.append((time.perf_counter() - started) / args.steps)
            heldout.append(result.metrics.get("heldout_loss", math.nan))
            reference.append(bare_loop(pieces, labels, cfg, config))
            print(
                f"run {attempt + 1}: genloop {ours[-1]:.3f} s/step  bare {reference[-1]:.3f} s/step",
                flush=True,
            )
    tokens = sum(len(p) for p in pieces)
    print(
        f"\n| measure | value |\n|---|---|\n"
        f"| train chorales / tokens | {len(pieces)} / {tokens} (held out: {args.chorales - len(pieces)}) |\n"
        f"| steps × batch × context | {args.steps} × {cfg.batch_size} × {config.block_size} |\n"
        f"| threads | {torch.get_num_threads()} |\n"
        f"| genloop s/step (all included) | {statistics.median(ours):.3f} |\n"
        f"| bare loop s/step | {statistics.median(reference):.3f} |\n"
        f"| ratio genloop / bare | {statistics.median(ours) / statistics.median(reference):.2f} |\n"
        f"| held-out loss, nats/token | {statistics.median(heldout):.3f} (uniform: ln {tokenizer.vocab_size} "
        f"= {math.log(tokenizer.vocab_size):.3f}) |"
    )


if __name__ == "__main__":
    main()

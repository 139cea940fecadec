"""Claim: batched generation (batch 64) is ≥ 5× faster than one item at a time on CPU, and gives
the same bytes.

Side by side in one process, on untrained models at the `cpu` training preset's sizes (speed
does not depend on the weights):

* image: the conditional VAE (28 × 28, latent 16, 32 channels) and the DCGAN (28 × 28,
  latent 64, 32 channels, projection conditioning), 10 classes — images/s;
* text: the char GPT of the `cpu` preset (4 layers, 4 heads, 128 wide, block 64) continuing
  one prompt for up to `--tokens` tokens with top-k 40 — tokens/s. The default keeps prompt +
  tokens within the block: past it the window slides and every step recomputes the whole
  block for every row, which measures the sliding window, not batching. Rows that end
  early (<eos>) still ride along in their batch until the longest one ends.

Two levels, each as `one-by-one` (chunks of 1) vs `batch 64` (chunks of 64), the same items:

* **sampling**: `generate.sampler.sample_chunk`, what the model does (per-item seeds in both);
* **end to end**: `generate.engine.generate` into a fresh workspace: sampling, then
  ChannelPlan.finish_many (the gallery channel's resize to 256, safety checks, visible mark,
  watermark, signed GB 45438 label, PNG encode), the atomic file writes and the catalog rows.
  The batched run is timed twice: finishing each chunk on one thread (genloop's default),
  and on `--finish-threads` threads (GENLOOP_FINISH_THREADS). The one-by-one run has a
  single item per chunk, so it never uses more than one.
* **near-duplicate check** alone (the end-to-end runs have no training data, so it reports
  "not checked" there): `--images` items against `--training-images` random 28² training
  images (MNIST's 60,000 by default), `check` per item vs `check_many` per chunk.

"identical" says whether the batched items are byte-for-byte the one-by-one items. End to end
starts with a warm-up of 2 other items, so one-off costs fall on neither run.

    GENLOOP_NUM_THREADS=1 .venv/bin/python benchmarks/generate_throughput.py     # ~3 min on 2 cores
    .venv/bin/python benchmarks/generate_throughput.py --images 64 --texts 16 --tokens 32

On CPUs shared with other work, set GENLOOP_NUM_THREADS=1: two torch threads competing with
other processes make small steps up to 50× slower at random, which swamps the comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genloop.catalog import open_catalog
from genloop.catalog.models import Run
from genloop.config import GenloopConfig
from genloop.generate.engine import GenerationRequest, generate
from genloop.generate.finish import FINISH_THREADS_ENV
from genloop.generate.requests import ItemSpec, plan_items
from genloop.generate.sampler import sample_chunk
from genloop.models.versions import register_model_version
from genloop.train.device import use_available_cpus
from genloop.workspace import Workspace

DIGITS = [str(d) for d in range(10)]
PROMPT = "The "


def vae() -> nn.Module:
    from genloop.models.vae import ConditionalVAE

    return ConditionalVAE(classes=DIGITS, latent_dim=16, hidden_channels=32, image_size=28)


def gan() -> nn.Module:
    from genloop.models.gan import DCGAN

    return DCGAN(classes=DIGITS, image_size=28, latent_dim=64, hidden_channels=32, conditioning="projection")


def gpt() -> nn.Module:
    from genloop.models.gpt import GPT, GPTConfig
    from genloop.models.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["The quick brown fox jumps over the lazy dog. 0123456789,;:!?'\n"])
    config = GPTConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=tokenizer.vocab_size)
    return GPT.build(config, tokenizer)


def _request(family: str, args: argparse.Namespace) -> GenerationRequest:
    if family == "gpt":
        return GenerationRequest(
            model="bench",
            prompts=[PROMPT],
            count=args.texts,
            max_new_tokens=args.tokens,
            params={"top_k": 40},
        )
    return GenerationRequest(model="bench", per_class=max(1, args.images // len(DIGITS)))


def _as_bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else data.encode() if isinstance(data, str) else data.tobytes()


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def sampling(family: str, model: nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    classes = list(getattr(model, "classes", [])) if family != "gpt" else []
    plan = plan_items(
        _request(family, args), version_id="bench-v1", family=family, classes=classes, config=GenloopConfig()
    )
    items: list[ItemSpec] = plan.items

    def chunks(size: int) -> list[bytes]:
        out = []
        for i in range(0, len(items), size):
            out += [
                _as_bytes(d) for d in sample_chunk(model, family, classes, items[i : i + size], plan.params)
            ]
        return out

    # Warm-up at both chunk sizes on other items: the first call at a new batch shape builds
    # the CPU convolution's kernels (oneDNN primitives, milliseconds), which would otherwise
    # land on the batched run's 4 calls and not on the one-by-one run's 256.
    warm = [dataclasses.replace(spec, seed=spec.seed + 10**6) for spec in items[: args.batch_size]]
    for size in (1, len(warm)):
        sample_chunk(model, family, classes, warm[:size], plan.params)
    alone_times, batch_times = [], []
    for _ in range(args.repeats):  # alternated, so drifting load hits both alike
        alone_s, alone = _timed(lambda: chunks(1))
        batch_s, batched = _timed(lambda: chunks(args.batch_size))
        alone_times.append(alone_s)
        batch_times.append(batch_s)
    units = _units(family, batched, model)
    return {
        "alone": units / statistics.median(alone_times),
        "batched": units / statistics.median(batch_times),
        "ratios": [a / b for a, b in zip(alone_times, batch_times, strict=True)],
        "identical": alone == batched,
        "units": units,
    }


def _units(family: str, outputs: list[bytes], model: nn.Module) -> float:
    """Images, or generated tokens (the char tokenizer: one token per character)."""
    return float(len(outputs)) if family != "gpt" else float(sum(len(o.decode()) for o in outputs))


def end_to_end(
    family: str, builder: Callable[[], nn.Module], units: float, args: argparse.Namespace
) -> dict[str, Any]:
    """Both runs in one workspace (one signing key): one-by-one, then the files deleted and the
    same request again in batches (the catalog rows stay; the files are made again)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        (root / "genloop.toml").write_text('[project]\nname = "bench"\n', encoding="utf-8")
        workspace = Workspace(root)
        catalog = open_catalog(workspace.database_url)
        torch.manual_seed(0)
        builder().save(Path(tmp) / "weights")  # type: ignore[operator]
        with catalog.session() as session:
            session.add(Run(id="r", model_name="bench", family=family, config={}, path="/r"))
        register_model_version(
            workspace, catalog, name="bench", family=family, run_id="r", weights_dir=Path(tmp) / "weights"
        )
        request = _request(family, args)
        # Warm-up on other items (another seed): one-off costs (font lookup, the watermark's
        # patterns, the signing key, lazy imports; up to 2 s under load) would otherwise land on
        # whichever run goes first.
        generate(workspace, catalog, dataclasses.replace(request, seed=request.seed + 1), limit=2)
        alone_s, alone = _timed(lambda: generate(workspace, catalog, request, batch_size=1))
        alone_files = [item.path.read_bytes() for item in alone]
        for item in alone:
            item.path.unlink()

        def batched_on(threads: int) -> tuple[float, Any]:
            os.environ[FINISH_THREADS_ENV] = str(threads)
            try:
                return _timed(lambda: generate(workspace, catalog, request, batch_size=args.batch_size))
            finally:
                os.environ.pop(FINISH_THREADS_ENV)

        one_s, one = batched_on(1)
        assert one.created == len(alone_files)
        identical = [item.path.read_bytes() for item in one] == alone_files
        for item in one:
            item.path.unlink()
        threads_s, threaded = batched_on(args.finish_threads)
        identical = identical and [item.path.read_bytes() for item in threaded] == alone_files
    return {
        "alone": units / alone_s,
        "batched_one_thread": units / one_s,
        "batched_threads": units / threads_s,
        "identical": identical,
    }


def near_duplicate(args: argparse.Namespace) -> dict[str, Any]:
    """The near-duplicate check alone: `--images` 256² outputs against `--training-images` 28² ones,
    each item on its own (`check`, as a chunk of one) vs all in one chunk (`check_many`)."""
    from PIL import Image

    from genloop.generate.artifact import Artifact
    from genloop.generate.safety.images import NearDuplicate, TrainingImages
    from genloop.generate.safety.registry import SafetyContext

    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (args.training_images, 28 * 28), dtype=torch.uint8, generator=generator)
    squared = pixels.double().square().sum(dim=1)
    where = [f"bench: {i}" for i in range(len(pixels))]
    check = NearDuplicate(threshold=0.15, size=28)
    context = SafetyContext(None, None, "bench")  # type: ignore[arg-type]  # training images given below
    context.cache["near-duplicate:bench:28"] = TrainingImages(
        pixels, squared.sqrt(), squared, where, 28, 1, "random bench pixels"
    )
    queries = torch.randint(0, 256, (args.images, 28, 28), dtype=torch.uint8, generator=generator)
    artifacts = [
        Artifact(f"q{i}", "image", Image.fromarray(q.numpy(), "L").resize((256, 256)), "png")
        for i, q in enumerate(queries)
    ]
    artifacts[0] = Artifact("copy", "image", Image.fromarray(pixels[7].reshape(28, 28).numpy(), "L"), "png")
    alone_s, alone = _timed(lambda: [check.check(artifact, context) for artifact in artifacts])
    chunks_s, chunked = _timed(
        lambda: [
            verdict
            for i in range(0, len(artifacts), args.batch_size)
            for verdict in check.check_many(artifacts[i : i + args.batch_size], context)
        ]
    )
    assert not alone[0].passed and alone[0].score == 0.0  # the planted copy is caught
    return {
        "alone": len(artifacts) / alone_s,
        "batched": len(artifacts) / chunks_s,
        "identical": alone == chunked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256, help="images per image family (default 256)")
    parser.add_argument("--texts", type=int, default=64, help="GPT texts (default 64)")
    parser.add_argument("--tokens", type=int, default=56, help="new tokens per text at most (default 56)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--repeats", type=int, default=3, help="sampling: alternated timings of each; the median is shown"
    )
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--finish-threads", type=int, default=2, help="GENLOOP_FINISH_THREADS of the last batched run"
    )
    parser.add_argument(
        "--training-images", type=int, default=60_000, help="near-duplicate check: training images"
    )
    args = parser.parse_args()
    os.environ.setdefault("GENLOOP_NO_PROGRESS", "1")
    use_available_cpus()
    builders = {"vae": vae, "gan": gan, "gpt": gpt}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}\n")
    print("| family | level | unit | one-by-one | batch | ratio | identical |")
    print("|---|---|---|---:|---:|---:|---|")
    for family, builder in builders.items():
        unit = "tokens/s" if family == "gpt" else "images/s"
        torch.manual_seed(0)
        row = sampling(family, builder().eval(), args)
        ratio = row["batched"] / row["alone"]
        runs = ", ".join(f"{r:.1f}" for r in row["ratios"])
        print(
            f"| {family} | sampling (median of {args.repeats}; runs {runs}) | {unit} | {row['alone']:,.1f} | "
            f"{row['batched']:,.1f} | {ratio:.1f}× | {'yes' if row['identical'] else 'NO'} |"
        )
        if args.skip_end_to_end:
            continue
        row = end_to_end(family, builder, row["units"], args)
        same = "yes" if row["identical"] else "NO"
        for key, threads in (("batched_one_thread", 1), ("batched_threads", args.finish_threads)):
            print(
                f"| {family} | end to end, finish on {threads} thread{'s' if threads > 1 else ''} | {unit} | "
                f"{row['alone']:,.1f} | {row[key]:,.1f} | {row[key] / row['alone']:.1f}× | {same} |"
            )
    row = near_duplicate(args)
    print(
        f"| near-duplicate check vs {args.training_images:,} training images | safety | images/s | "
        f"{row['alone']:,.1f} | {row['batched']:,.1f} | {row['batched'] / row['alone']:.1f}× | "
        f"{'yes' if row['identical'] else 'NO'} |"
    )


if __name__ == "__main__":
    main()

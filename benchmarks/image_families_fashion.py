"""Claim: genloop's image families (vae, gan, ddpm) at the `cpu` preset, trained for a wall-clock
budget on Fashion-MNIST, against a pytorch/examples-style DCGAN trained for the same seconds.

Data: Debian's `dataset-fashion-mnist` (70,000 images) collected and labelled as `genloop
collect` (source `fashion-mnist`, 1/7 held out by content hash) + `annotate` would. Every model
trains on the same train split.

* **genloop**: `genloop.train.train_model(TrainConfig(family=F, preset="cpu", max_steps=S))` —
  the whole call is timed (decoding the PNG shards, training, held-out evaluation, sample grids,
  checkpoints, registering the model version). S is set so that the call takes about `--budget`
  seconds: two short calibration runs (`max_steps` = 2 and more) fit seconds = fixed + S × per
  step; `--steps F=S` skips that. The vae recipe ignores `max_steps` (it runs whole epochs), so
  vae is calibrated on one epoch and trains whole epochs.
* **reference**: `benchmarks/_dcgan_reference.py`, a DCGAN the way pytorch/examples' dcgan/main.py
  trains one (32 × 32, fp32, torch's default threads), trained on the same train images (already
  decoded) for exactly the wall seconds each genloop family took. It has no schedule, so one run
  keeps a copy of G at each family's time.

Every model is scored the same way, with genloop's own evaluation code
(`genloop.evaluate.image.distribution_metrics`): `--samples` images embedded by the LeNet-style
classifier genloop trains on the real train split (`[evaluate]` defaults), compared with the real
train split's features: Fréchet distance, KID (25 subsets), k-NN precision/recall (k = 3, at most
5,000 per set). The floor row scores as many real test images the same way: what a perfect model
would get. These are "LeNet-style features trained on Fashion-MNIST" distances — not Inception
FIDs, not comparable with published numbers. Usage::

    .venv/bin/python benchmarks/image_families_fashion.py [--budget 240] [--samples 10000]
        [--families vae gan ddpm] [--steps gan=4000 ...] [--seed 0]

Quick check that it works: `--budget 20 --samples 1000`. genloop's fixed cost per run (≈ 7 s gan,
≈ 35 s ddpm, whose held-out loss and guided sample grid at each epoch end are long) leaves few or
no steps at that budget: the figures mean nothing, the table proves the pipeline. Generating
dominates a full run: the ddpm preset samples with 25 guided DDIM steps (50 U-Net passes per
image), ≈ 0.3–0.5 s an image on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from _dcgan_reference import ReferenceDCGAN, Snapshot, sample  # benchmarks/ is on sys.path when run

from genloop.catalog import Catalog, open_catalog
from genloop.config import AnnotateConfig, CollectConfig, EvaluateConfig, TrainConfig
from genloop.data.annotate import annotate
from genloop.data.collect import collect
from genloop.data.datasets import DatasetHandle
from genloop.evaluate.classifier import Classifier, real_data_classifier
from genloop.evaluate.image import distribution_metrics, generated_features, is_conditional
from genloop.evaluate.real_features import RealFeatures, real_features
from genloop.models.versions import load_model_version
from genloop.train import resolve_train_config, train_model
from genloop.train.device import use_available_cpus
from genloop.train.images import image_tensors
from genloop.workspace import Workspace

RUN_TOKEN = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
DEFAULT_THREADS = torch.get_num_threads()  # torch's own default, before genloop sets its own
FAMILIES = ("vae", "gan", "ddpm")
TEST_FRACTION = 1 / 7  # ≈ the official 60,000 / 10,000 split
FIRST_PROBE = 2  # calibration: steps of the first short run (≈ the fixed cost)
PROBE_SHARE = 0.15  # the second run spends about this share of the budget on steps
MIN_PROBE_SECONDS = 10.0  # and at least this many seconds
WHOLE_EPOCHS = {"vae"}  # recipes that ignore `max_steps` (genloop's vae recipe, as of this script)
PRIOR_STEP_SECONDS = {"vae": 0.05, "gan": 0.08, "ddpm": 1.5}  # only sizes the second probe run


@dataclass(frozen=True)
class Scored:
    name: str
    seconds: float | None
    steps: int | None
    metrics: dict[str, Any]
    sample_seconds: float


@dataclass(frozen=True)
class Bench:
    workspace: Workspace
    catalog: Catalog
    dataset: DatasetHandle
    classifier: Classifier
    real: RealFeatures
    train_count: int


def fashion_workspace(root: Path) -> tuple[Workspace, Catalog, DatasetHandle]:
    """A workspace whose labelled dataset version holds all of Debian's Fashion-MNIST."""
    (root / "genloop.toml").write_text('[project]\nname = "fashion"\n', encoding="utf-8")
    workspace = Workspace(root)
    catalog = open_catalog(workspace.database_url)
    cfg = CollectConfig(source="fashion-mnist", test_fraction=TEST_FRACTION)
    collected = collect(workspace, catalog, cfg, name="fashion-mnist").dataset
    dataset = annotate(workspace, catalog, collected, AnnotateConfig(labels_from="source")).dataset
    return workspace, catalog, dataset


@dataclass(frozen=True)
class Plan:
    """How long one genloop run trains: `steps` optimizer steps over `epochs` epochs."""

    epochs: int
    steps: int


def plan_for(bench: Bench, family: str, steps: int) -> Plan:
    """`steps` optimizer steps, with enough epochs that the preset's epoch count never cuts them short.

    The vae recipe does not honour `max_steps` (it always runs whole epochs), so for vae the count
    is rounded up to whole epochs.
    """
    per_epoch = -(
        -bench.train_count // resolve_train_config(TrainConfig(family=family, preset="cpu")).batch_size
    )
    epochs = max(1, -(-steps // per_epoch))
    return Plan(epochs, epochs * per_epoch if family in WHOLE_EPOCHS else steps)


def timed_training(bench: Bench, family: str, plan: Plan, name: str) -> tuple[float, str]:
    """(wall seconds of the whole `train_model` call, model version id)."""
    cfg = TrainConfig(family=family, preset="cpu", epochs=plan.epochs, max_steps=plan.steps)
    name = f"{name}-{RUN_TOKEN}"  # a new run id: a kept --workspace must not hand back an old run
    started = time.perf_counter()
    result = train_model(bench.workspace, bench.catalog, bench.dataset, cfg, model_name=name, alias=None)
    seconds = time.perf_counter() - started
    if result.already_completed or result.resumed_from_step is not None:
        sys.exit(f"{name}: genloop reused an earlier run, so its time is not a training time; rerun")
    return seconds, result.model_version_id


def plan_for_budget(bench: Bench, family: str, budget: float) -> Plan:
    """The plan of a run of ≈ `budget` s: seconds = fixed + steps × per step, fitted on two short runs.

    Whole-epoch families (vae) get one probe epoch, whose time counts the fixed cost as training.
    """
    if family in WHOLE_EPOCHS:
        one_epoch = plan_for(bench, family, 1)
        seconds, _ = timed_training(bench, family, one_epoch, f"{family}-probe")
        plan = plan_for(bench, family, max(1, round(budget / seconds)) * one_epoch.steps)
        print(f"{family}: calibration 1 epoch {seconds:.1f} s → {plan.epochs} epoch(s)", flush=True)
        return plan
    first, _ = timed_training(bench, family, plan_for(bench, family, FIRST_PROBE), f"{family}-probe-a")
    stepping = max(PROBE_SHARE * budget, MIN_PROBE_SECONDS)  # well above the fixed cost's noise
    second_steps = FIRST_PROBE + max(5, round(stepping / PRIOR_STEP_SECONDS[family]))
    second, _ = timed_training(bench, family, plan_for(bench, family, second_steps), f"{family}-probe-b")
    per_step = max((second - first) / (second_steps - FIRST_PROBE), 1e-4)
    fixed = max(first - FIRST_PROBE * per_step, 0.0)
    plan = plan_for(bench, family, max(1, round((budget - fixed) / per_step)))
    print(
        f"{family}: calibration {FIRST_PROBE} steps {first:.1f} s, {second_steps} steps {second:.1f} s → "
        f"fixed {fixed:.1f} s + {per_step:.3f} s/step → {plan.steps} steps",
        flush=True,
    )
    return plan


def score(bench: Bench, features: torch.Tensor, seed: int) -> dict[str, Any]:
    return distribution_metrics(features, bench.real, bench.dataset, seed=seed)


def score_family(bench: Bench, family: str, plan: Plan, samples: int, seed: int) -> Scored:
    seconds, version_id = timed_training(bench, family, plan, f"{family}-benchmark")
    loaded = load_model_version(bench.workspace, bench.catalog, version_id)
    started = time.perf_counter()
    features, _ = generated_features(
        loaded, bench.classifier, samples, seed=seed, conditional=is_conditional(loaded)
    )
    sampled = time.perf_counter() - started
    print(
        f"{family}: trained {plan.steps} steps in {seconds:.1f} s, sampled {samples} in {sampled:.1f} s",
        flush=True,
    )
    return Scored(
        f"genloop {family} (cpu preset)", seconds, plan.steps, score(bench, features, seed), sampled
    )


def score_reference(bench: Bench, snapshot: Snapshot, samples: int, seed: int, family: str) -> Scored:
    started = time.perf_counter()
    images = sample(snapshot.generator, samples, seed=seed)
    features = bench.classifier.model.embed(images).float()
    sampled = time.perf_counter() - started
    name = f"reference DCGAN, {family}'s time"
    return Scored(name, snapshot.seconds, snapshot.steps, score(bench, features, seed), sampled)


def score_floor(bench: Bench, samples: int, seed: int) -> Scored:
    """Real test images scored like a model: the best any model can do with this many samples."""
    test = bench.real.test
    rows = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:samples]
    return Scored("real test split (floor)", None, None, score(bench, test[rows], seed), 0.0)


def machine_line(load_before: tuple[float, ...]) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load_after = os.getloadavg()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {cpu}, {len(os.sched_getaffinity(0))} CPUs; "
        f"torch {torch.__version__}; load average {load_before[0]:.1f} at the start, "
        f"{load_after[0]:.1f} at the end"
    )


def table(rows: list[tuple[Scored, Scored | None]]) -> list[str]:
    """Markdown rows; each genloop row's FD ÷ the FD of the reference trained for its time."""
    lines = [
        "| model | train s | steps | FD | KID (± std) | precision | recall | FD ÷ reference | sampling s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scored, reference in rows:
        m = scored.metrics
        seconds = "—" if scored.seconds is None else f"{scored.seconds:.0f}"
        steps = "—" if scored.steps is None else f"{scored.steps:,}"
        ratio = f"**{m['fd'] / reference.metrics['fd']:.2f}**" if reference is not None else "—"
        sampling = "—" if scored.seconds is None else f"{scored.sample_seconds:.0f}"  # generate + embed
        lines.append(
            f"| {scored.name} | {seconds} | {steps} | {m['fd']:.3f} | {m['kid']:.4f} ± {m['kid_std']:.4f} | "
            f"{m['precision']:.3f} | {m['recall']:.3f} | {ratio} | {sampling} |"
        )
    return lines


def parse_steps(values: list[str]) -> dict[str, int]:
    steps: dict[str, int] = {}
    for value in values:
        family, _, count = value.partition("=")
        if family not in FAMILIES or not count.isdigit() or int(count) < 1:
            sys.exit(f"--steps {value!r}: expected FAMILY=STEPS with FAMILY in {', '.join(FAMILIES)}")
        steps[family] = int(count)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="wall seconds per genloop model")
    parser.add_argument("--samples", type=int, default=10_000, help="generated images scored per model")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", nargs="*", default=[], help="FAMILY=STEPS: skip that family's calibration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary one)")
    args = parser.parse_args()
    fixed_steps = parse_steps(args.steps)
    os.environ.setdefault("GENLOOP_DEVICE", "cpu")  # a CPU comparison even where a GPU is present
    load_before = os.getloadavg()
    use_available_cpus()
    genloop_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workspace or Path(tmp) / "fashion"
        root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        workspace, catalog, dataset = fashion_workspace(root)
        print(f"collect + annotate: {time.perf_counter() - started:.1f} s, dataset {dataset.id}", flush=True)
        classes = dataset.classes
        started = time.perf_counter()
        classifier = real_data_classifier(
            workspace, dataset, classes=classes, image_size=28, channels=1,
            epochs=EvaluateConfig().classifier_epochs, seed=args.seed,
        )  # fmt: skip
        real = real_features(workspace, dataset, classifier)
        print(
            f"classifier: test accuracy {classifier.test_accuracy:.4f}, "
            f"{time.perf_counter() - started:.1f} s with the real features",
            flush=True,
        )
        train_x, _ = image_tensors(
            dataset.iter_records("train"), classes=classes, image_size=28, channels=1, what="train split"
        )
        bench = Bench(workspace, catalog, dataset, classifier, real, len(train_x))
        scored: dict[str, Scored] = {}
        for family in args.families:
            plan = (
                plan_for(bench, family, fixed_steps[family])
                if family in fixed_steps
                else plan_for_budget(bench, family, args.budget)
            )
            scored[family] = score_family(bench, family, plan, args.samples, args.seed)
        torch.set_num_threads(DEFAULT_THREADS)  # the reference runs as the example would
        times = [scored[f].seconds or 0.0 for f in args.families]
        snapshots = ReferenceDCGAN(seed=args.seed).train_for(train_x, times, seed=args.seed)
        by_time = dict(zip(sorted(times), snapshots, strict=True))
        torch.set_num_threads(genloop_threads)
        rows: list[tuple[Scored, Scored | None]] = []
        for family in args.families:
            snapshot = by_time[scored[family].seconds or 0.0]
            reference = score_reference(bench, snapshot, args.samples, args.seed, family)
            rows += [(scored[family], reference), (reference, None)]
        rows.append((score_floor(bench, args.samples, args.seed), None))
        catalog.dispose()
    print(f"\n{machine_line(load_before)}")
    print(
        f"Fashion-MNIST (Debian dataset-fashion-mnist): {len(train_x):,} train / "
        f"{len(real.test):,} test images; "
        f"{args.samples:,} samples per model; features: LeNet-style classifier trained on Fashion-MNIST "
        f"(test accuracy {classifier.test_accuracy:.3f}), not Inception; FD/KID/P/R against the real train "
        f"split; genloop {genloop_threads} threads, reference {DEFAULT_THREADS} (torch default); budget "
        f"{args.budget:.0f} s per genloop model, the reference trained for each one's measured seconds\n"
    )
    print("\n".join(table(rows)))
    print(
        f"\ncommand: .venv/bin/python benchmarks/image_families_fashion.py {' '.join(sys.argv[1:])}".rstrip()
    )


if __name__ == "__main__":
    main()

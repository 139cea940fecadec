"""Claim: `genloop loop` turns a simulated audience's likes into a better-liked model in a few rounds,
without losing image quality — issue #8's measure: with a persona that likes one Fashion-MNIST class
and a base like-rate near 10 %, the like-rate of published items reaches ≥ 60 % after 3 rounds while
the champion's FD stays within 10 % of the first champion's.

What runs (the same code as `genloop run` + `genloop loop --simulate likes-class:LABEL`):

1. A workspace on Debian's Fashion-MNIST (`--limit` images, 1/7 held out), `genloop run` up to
   evaluate: a class-conditional VAE at the `cpu` preset, the LeNet-style classifier, FD on
   class-balanced samples (`[evaluate].samples`).
2. `--rounds` loop rounds of `--per-round` items: generate (labels drawn from each arm's class
   prior), publish, a simulated audience that likes LABEL (its eyes: the workspace classifier;
   like probability base + (peak − base) · P(LABEL | image)) reacts through the HTTP API served
   in-process, the bandit decides, `reward-weighted` improvement trains the next challenger, the
   `fd` gate (no worse than the champion by 10 %) admits it.

The table: per round, the like-rate per look of what was published (each arm and together),
the decision, the challenger made and the share of LABEL in its class prior, the champion's FD
against the first champion's; then events, rounds and wall time. Usage::

    .venv/bin/python benchmarks/loop_fashion.py [--label Sneaker] [--rounds 4] [--limit 20000]
        [--per-round 64] [--viewers 30] [--beta 2.0] [--samples 2000] [--workspace DIR]

`--eyes pixels` gives the persona eyes of its own — a logistic regression on the raw pixels of
the train split (scikit-learn) — instead of the workspace classifier, whose features the reward
model also uses: then the audience's perception and the model's reward share nothing.

Quick check that it works: `--limit 3000 --rounds 2 --per-round 32 --samples 500`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _loop_report import (  # benchmarks/ is on sys.path when run
    arm_cells,
    machine_line,
    pct,
    prepared_workspace,
    tail_cells,
    timed_loop,
)

from genloop.loop.audience import SimulatedAudience
from genloop.loop.rounds import RoundSummary
from genloop.models.gates import latest_evaluation
from genloop.models.label_prior import read_label_prior
from genloop.models.versions import load_model_version, resolve_model_version
from genloop.workspace import Workspace

CONFIG = """
[project]
name = "fashion"

[collect]
source = "fashion-mnist"
limit = {limit}
test_fraction = 0.142857

[train]
family = "vae"
preset = "cpu"
epochs = {epochs}

[evaluate]
samples = {samples}
samples_per_class = 50

[improve]
recipe = "reward-weighted"
epochs = 1
samples_per_class = 32
reward_beta = {beta}

[loop]
per_round = {per_round}
min_exposure = 30
seed = {seed}

[loop.audience]
persona = "likes-class:{label}"
viewers = {viewers}
items_per_viewer = 40
base_rate = 0.02
peak_rate = 0.9
seed = {seed}

[[gates]]
metric = "fd"
rule = "no_worse_than_champion"
direction = "lower_is_better"
tolerance = 0.10
"""


def fd_of(ws: Workspace, catalog: Any, version: str) -> float | None:
    row = latest_evaluation(catalog, version)
    return float(row.metrics["fd"]) if row is not None and "fd" in row.metrics else None


def label_share(ws: Workspace, catalog: Any, version: str | None, label: str) -> float | None:
    if not version:
        return None
    loaded = load_model_version(ws, catalog, version)
    return read_label_prior(loaded.path, loaded.classes).get(label)


def pixel_eyes(ws: Workspace, catalog: Any) -> Any:
    """A logistic regression on raw 28×28 pixels of the train split: P(class | image)."""
    import io

    import numpy as np
    from PIL import Image
    from sklearn.linear_model import LogisticRegression

    from genloop.data.datasets import open_dataset_version
    from genloop.improve.recipe import training_dataset_id

    champion = resolve_model_version(catalog, "fashion@champion")
    data = open_dataset_version(ws, catalog, training_dataset_id(catalog, champion))

    def pixels(image: Image.Image) -> np.ndarray:
        return np.asarray(image.convert("L").resize((28, 28)), dtype=np.float32).reshape(-1) / 255.0

    rows = [(pixels(Image.open(io.BytesIO(r.payload))), r.label) for r in data.iter_records("train")]
    model = LogisticRegression(max_iter=300, C=0.5).fit(np.stack([x for x, _ in rows]), [y for _, y in rows])
    classes = [str(c) for c in model.classes_]

    def recognise(image: Image.Image) -> dict[str, float]:
        return dict(zip(classes, model.predict_proba(pixels(image)[None])[0].tolist(), strict=True))

    return recognise


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="Sneaker")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=64)
    parser.add_argument("--viewers", type=int, default=30)
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--eyes", choices=("classifier", "pixels"), default="classifier")
    args = parser.parse_args()
    ws, catalog, setup_seconds, load_before = prepared_workspace(
        args.workspace,
        "genloop-loop-fashion-",
        CONFIG.format(
            limit=args.limit, epochs=args.epochs, samples=args.samples, beta=args.beta,
            per_round=args.per_round, seed=args.seed, label=args.label, viewers=args.viewers,
        ),
    )  # fmt: skip
    root = ws.root
    first = resolve_model_version(catalog, "fashion@champion")
    first_fd = fd_of(ws, catalog, first)
    eyes = pixel_eyes(ws, catalog) if args.eyes == "pixels" else None
    audience = SimulatedAudience(ws, ws.config.loop.audience, recognise=eyes)

    lines: list[str] = []

    def report(summary: RoundSummary) -> None:
        improve = summary.stats.get("improve") or {}
        champion_fd = fd_of(ws, catalog, summary.champion)
        ratio = champion_fd / first_fd if champion_fd and first_fd else None
        lines.append(
            f"{arm_cells(summary)} {improve.get('challenger', improve.get('skipped', '—'))} | "
            f"{pct(label_share(ws, catalog, improve.get('challenger'), args.label))} | "
            f"{summary.champion}: {champion_fd:.2f} ({ratio:.2f}×) |{tail_cells(summary)}"
        )
        print(lines[-1], flush=True)

    summaries, loop_seconds, events = timed_loop(ws, catalog, audience, args.rounds, report)
    print()
    print(machine_line(load_before))
    print(f"persona eyes: {args.eyes}")
    print(
        f"workspace: {root}; first champion {first}, FD {first_fd:.2f} "
        f"(LeNet features, {args.samples} class-balanced samples)"
    )
    print(
        f"setup (collect → evaluate): {setup_seconds:.0f} s; loop: {len(summaries)} rounds, "
        f"{loop_seconds:.0f} s, {events:,} feedback events stored"
    )
    print()
    print(
        "| round | champion like-rate (items) | challenger like-rate (items) | round like-rate | decision | "
        f"new challenger | {args.label} in its prior | champion FD (× first) | events | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()

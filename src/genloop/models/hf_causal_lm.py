"""A pretrained Hugging Face causal LM from a local folder, fine-tuned with a LoRA adapter.

    base      W (frozen)       any `AutoModelForCausalLM` folder (config.json + weights, or a GGUF file)
    adapter   W + (α / r)·B·A  on `target_modules` (Hu et al. 2021, https://arxiv.org/abs/2106.09685),
                               A (r, d_in), B (d_out, r) — the only trained weights

    [train.model]
    base_model = "models/SmolLM2-135M"     # a local folder; nothing is downloaded
    gguf_file = "model.Q4_1.gguf"          # optional: load (and de-quantise) this GGUF file instead
    lora_r = 8                             # optional, as are lora_alpha, lora_dropout, target_modules

A saved model is `config.json` (family, base folder, the base's fingerprint, LoRA
options) + `model.safetensors` holding only the adapter (1.9 MB for SmolLM2-135M at
r = 8, beside a 540 MB fp32 base). `load` rebuilds base + adapter and refuses a base that is missing or
changed since. `state_dict()` / `load_state_dict()` likewise cover the adapter only,
so training checkpoints stay small and a resumed run restores exactly what it trains.

Text convention (training and generation agree on it): a document is
`[bos] tokens [eos]` (no bos when the tokenizer has none, or bos == eos as in GPT-2);
a prompt is `[bos or eos] tokens`, i.e. the start of a new document.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genloop.errors import GenloopError, NotFoundError
from genloop.models.files import load_model_weights, read_model_config, save_model_files
from genloop.models.hf_base_model import (
    adaptable_names,
    base_fingerprint,
    check_folder,
    check_targets,
    default_target_modules,
    read_config,
    transformers_module,
)
from genloop.models.registry import register_model
from genloop.models.sampling import SamplingParams, cut_at_stop, generate_ids

FAMILY = "hf-causal-lm"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SAMPLING_PARAMS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "stop")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class HFCausalLMConfig:
    base_model: str = ""
    """Local folder of the pretrained model (made absolute when the model is built)."""
    gguf_file: str | None = None
    """A GGUF file inside `base_model` to load instead of config.json + weights."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] | None = None
    """Module names (or name suffixes) that get an adapter; None: the default for the architecture."""
    dtype: str = "float32"
    """Weights of the frozen base: float32 on CPU; bfloat16 halves the memory on a GPU."""
    base_fingerprint: str | None = None
    """Set when the model is built; a saved adapter only loads onto the same base."""

    def __post_init__(self) -> None:
        problems = []
        if not self.base_model:
            problems.append("base_model (a local Hugging Face model folder) is required")
        if self.lora_r < 1 or self.lora_alpha <= 0:
            problems.append(f"lora_r must be ≥ 1 and lora_alpha > 0 (got {self.lora_r}, {self.lora_alpha})")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})")
        if self.target_modules is not None and (
            not self.target_modules
            or isinstance(self.target_modules, str)
            or not all(isinstance(t, str) and t for t in self.target_modules)
        ):
            problems.append(f"target_modules must be a non-empty list of names (got {self.target_modules!r})")
        if problems:
            raise GenloopError(
                "invalid hf-causal-lm config: " + "; ".join(problems),
                hint="fix [train.model] in genloop.toml",
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HFCausalLMConfig:
        """From `[train.model]`, naming any option this family does not know."""
        known = {f.name for f in fields(cls)} - {"base_fingerprint"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GenloopError(
                f"unknown [train.model] option(s) {unknown} for the hf-causal-lm family",
                hint=f"known: {', '.join(sorted(known))}",
            )
        try:
            return cls(**options)
        except TypeError as exc:  # a string where a number belongs: the comparisons above fail
            raise GenloopError(
                f"invalid [train.model] option types: {exc}",
                hint="lora_r is an integer, lora_dropout a float",
            ) from None


def resolve_config(config: HFCausalLMConfig) -> HFCausalLMConfig:
    """Check `config` against its base folder without loading the weights: the folder is a
    causal LM, every target module exists, the base is the one a saved adapter was trained
    on. Returns it with the folder made absolute, target_modules filled in and the base's
    fingerprint; a GenloopError otherwise, so a bad [train.model] fails before training."""
    folder = Path(config.base_model).expanduser().resolve()
    check_folder(folder, config.gguf_file)
    fingerprint = base_fingerprint(folder, config.gguf_file)
    if config.base_fingerprint is not None and config.base_fingerprint != fingerprint:
        raise GenloopError(
            f"the base model in {folder} changed since this adapter was trained "
            f"(fingerprint {fingerprint}, expected {config.base_fingerprint})",
            hint="restore the original base model files, or retrain the adapter on the new base",
        )
    hf_config = read_config(folder, config.gguf_file, fingerprint)
    targets = config.target_modules or default_target_modules(hf_config)
    with torch.device("meta"):  # shapes and names only: no memory, no weights read
        skeleton = transformers_module().AutoModelForCausalLM.from_config(hf_config)
    check_targets(skeleton, targets, str(folder))
    return replace(config, base_model=str(folder), target_modules=list(targets), base_fingerprint=fingerprint)


# -- the model -----------------------------------------------------------------------------------------


@register_model(FAMILY)
class HFCausalLM(nn.Module):
    """Frozen pretrained causal LM + trainable LoRA adapter; `loss(ids)`, `generate_text`, `sample`."""

    config_class = HFCausalLMConfig

    def __init__(
        self,
        *,
        base_model: str,
        gguf_file: str | None = None,
        lora_r: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        target_modules: list[str] | None = None,
        dtype: str = "float32",
        base_fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        requested = HFCausalLMConfig(
            base_model=base_model,
            gguf_file=gguf_file,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules,
            dtype=dtype,
            base_fingerprint=base_fingerprint,
        )
        self.config = resolve_config(requested)
        transformers = transformers_module()
        from peft import LoraConfig, get_peft_model

        folder, gguf = self.config.base_model, self.config.gguf_file
        assert self.config.base_fingerprint is not None  # resolve_config sets it
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            folder, gguf_file=gguf, local_files_only=True
        )
        if self.tokenizer.eos_token_id is None:
            raise GenloopError(
                f"the tokenizer in {folder} has no end-of-text token",
                hint="set eos_token in its tokenizer_config.json (documents are separated by it)",
            )
        base = transformers.AutoModelForCausalLM.from_pretrained(
            folder,
            config=read_config(Path(folder), gguf, self.config.base_fingerprint),  # cached: not parsed again
            gguf_file=gguf,
            dtype=getattr(torch, self.config.dtype),
            local_files_only=True,
        )
        targets = self.config.target_modules or []
        conv1d = any(  # GPT-2 style Conv1D stores W transposed; LoRA must know
            type(m).__name__ == "Conv1D" and name.rsplit(".", 1)[-1] in targets
            for name, m in base.named_modules()
        )
        lora = LoraConfig(
            fan_in_fan_out=conv1d,
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=self.config.target_modules,
            task_type="CAUSAL_LM",
        )
        try:
            with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x
                warnings.simplefilter("ignore", FutureWarning)
                self.peft = get_peft_model(base, lora)  # freezes the base, adds A (random) and B (zeros)
        except ValueError as exc:  # e.g. a target that is a LayerNorm, not a Linear
            raise GenloopError(
                f"LoRA cannot adapt target_modules {self.config.target_modules}: {str(exc).splitlines()[0]}",
                hint=f"layers LoRA can adapt: {', '.join(adaptable_names(base))}",
            ) from None

    @classmethod
    def build(cls, config: HFCausalLMConfig) -> HFCausalLM:
        return cls(**asdict(config))

    @property
    def context_length(self) -> int | None:
        """The base's maximum sequence length in tokens, when its config says."""
        base_config = self.peft.get_base_model().config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(base_config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    # -- the adapter is the model's state ---------------------------------------------------------

    def adapter_parameters(self) -> dict[str, nn.Parameter]:
        """The LoRA matrices by name (the only parameters that train)."""
        return {name: p for name, p in self.peft.named_parameters() if "lora_" in name}

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """The adapter only: the frozen base is named by config.json, not copied into checkpoints."""
        return {name: p.detach() for name, p in self.adapter_parameters().items()}

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        params = self.adapter_parameters()
        missing, unexpected = sorted(set(params) - set(state_dict)), sorted(set(state_dict) - set(params))
        if missing or unexpected:
            raise RuntimeError(
                f"adapter weights do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        with torch.no_grad():
            for name, param in params.items():
                value = state_dict[name]
                if value.shape != param.shape:
                    raise RuntimeError(f"{name}: shape {tuple(value.shape)} ≠ {tuple(param.shape)}")
                param.copy_(value)
        return torch.nn.modules.module._IncompatibleKeys([], [])

    # -- text ↔ tokens -----------------------------------------------------------------------------

    @property
    def _start_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def encode_document(self, text: str) -> list[int]:
        """`[bos] tokens [eos]` — one training document (no bos when there is none, or bos == eos)."""
        bos, eos = self.tokenizer.bos_token_id, int(self.tokenizer.eos_token_id)
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        return ([bos] if bos is not None and bos != eos else []) + ids + [eos]

    def encode_prompt(self, prompt: str) -> list[int]:
        """`[bos or eos] tokens`: a prompt is the start of a new document."""
        return [self._start_id, *self.tokenizer.encode(prompt, add_special_tokens=False)]

    # -- training and generation ---------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T) → next-token logits (B, T, V)."""
        return self.peft(input_ids=input_ids).logits

    def loss(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over a block (B, T): −1/(B(T−1)) Σ log p(x_t+1 | x_≤t), nats."""
        return self.peft(input_ids=input_ids, labels=input_ids).loss

    # -- the decoding loop's view of the model (models/sampling.TokenModel) ----------------------------

    @property
    def block_size(self) -> int:
        """Tokens the decoding loop keeps in its window (the base's maximum length)."""
        return self.context_length or 2048

    def new_cache(self) -> Any:
        return transformers_module().DynamicCache(config=self.peft.get_base_model().config)

    def select_rows(self, cache: Any, index: torch.Tensor) -> Any:
        """The cache of rows `index` only (a DynamicCache is cut in place)."""
        cache.batch_select_indices(index)
        return cache

    def next_logits(self, idx: torch.Tensor, cache: Any | None) -> torch.Tensor:
        """idx (B, t): the tokens after those `cache` holds → logits of the last position (B, V);
        the cache (a DynamicCache, positions counted from its length) grows by t."""
        if cache is None:
            return self.peft(input_ids=idx, use_cache=False).logits[:, -1]
        return self.peft(input_ids=idx, use_cache=True, **{self._cache_argument: cache}).logits[:, -1]

    @functools.cached_property
    def _cache_argument(self) -> str:
        """transformers ≥ 5.24 names the forward's cache argument `cache` (`past_key_values` is
        deprecated there); read from the signature once, not every decoding step."""
        forward = inspect.signature(self.peft.get_base_model().forward).parameters
        return "cache" if "cache" in forward else "past_key_values"

    @torch.no_grad()
    def generate_text(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        stop: Sequence[str] = (),
        seed: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[str]:
        """The continuation of each prompt (without the prompt); temperature 0 is greedy decoding.

        Prompt i draws from its own generator seeded with seeds[i], or seed + i without `seeds`
        (models/sampling.py: the same
        processors and draws as the gpt family), so its text does not depend on the others'
        draws. Rows with the same prompt decode together, one batched forward per token with a
        KV cache: ten lines of one ad prompt cost far less than ten lone lines. (A batched
        product may round the last bit differently from a lone row's, so a text's independence
        of its batch holds up to that: a draw on the exact edge of two tokens could flip.)"""
        if seeds is not None and len(seeds) != len(prompts):
            raise GenloopError(
                f"seeds must hold one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds"
            )
        row_seeds = list(seeds) if seeds is not None else [seed + i for i in range(len(prompts))]
        stops = [s for s in ([stop] if isinstance(stop, str) else stop) if s]
        params = SamplingParams(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty,
            max_tokens=max_new_tokens,
            stop=tuple(stops),
        )
        device = next(self.peft.parameters()).device
        eos = int(self.tokenizer.eos_token_id)

        def decode(ids: Sequence[int]) -> str:
            return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

        same_prompt: dict[tuple[int, ...], list[int]] = {}
        for i, prompt in enumerate(prompts):
            same_prompt.setdefault(tuple(self.encode_prompt(prompt)), []).append(i)
        texts = [""] * len(prompts)
        was_training = self.training
        self.eval()
        for ids, rows in same_prompt.items():
            batch = torch.tensor([list(ids)] * len(rows), device=device)  # (B, T0)
            generators = [torch.Generator().manual_seed(row_seeds[i]) for i in rows]
            new_ids = generate_ids(self, batch, params, generator=generators, eos_id=eos, decode=decode)
            for i, tokens in zip(rows, new_ids, strict=True):
                texts[i] = cut_at_stop(decode(tokens), stops)
        self.train(was_training)
        return texts

    @torch.no_grad()
    def sample(
        self,
        n: int,
        condition: Any = None,
        *,
        seed: int,
        seeds: Sequence[int] | None = None,
        **params: Any,
    ) -> list[str]:
        """`n` texts. `condition`: None (unprompted), a prompt, or n prompts; `seeds` (one per
        text) makes text i `sample(1, prompt_i, seed=seeds[i])` up to a batched product's
        rounding; `params` are generate_text's (max_new_tokens, temperature, top_k, top_p,
        repetition_penalty, stop)."""
        unknown = sorted(set(params) - set(SAMPLING_PARAMS))
        if unknown:
            raise GenloopError(
                f"unknown sampling parameter(s) {unknown} for the hf-causal-lm family",
                hint=f"known: {', '.join(SAMPLING_PARAMS)}",
            )
        if condition is None or isinstance(condition, str):
            prompts = [condition or ""] * n
        else:
            prompts = [str(c) for c in condition]
            prompts = prompts * n if len(prompts) == 1 else prompts
        if len(prompts) != n:
            raise GenloopError(f"condition must be one prompt or {n} prompts (got {len(prompts)})")
        return self.generate_text(prompts, seed=seed, seeds=seeds, **params)

    # -- artifacts -------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """`config.json` (family, base folder + fingerprint, LoRA options) and the adapter weights."""
        save_model_files(directory, family=FAMILY, config=asdict(self.config), module=self)

    @classmethod
    def load(cls, directory: Path) -> HFCausalLM:
        """Base (the folder config.json names) + the saved adapter; an error if the base moved or changed."""
        saved = read_model_config(directory, family=FAMILY, config_class=HFCausalLMConfig)
        if not Path(saved.get("base_model", "")).is_dir():
            raise NotFoundError(
                f"the base model of {directory} is missing: {saved.get('base_model')} is not a folder",
                hint="this adapter holds only the LoRA weights; restore the base model folder at that path",
            )
        model = cls(**saved)
        load_model_weights(model, directory)
        return model

"""Language models that write candidate lines: genloop's GPT, or SmolLM2-135M with a LoRA adapter.

    CopyModel.load(workspace, catalog, "adcopy")      a registered model version (gpt or
                                                        hf-causal-lm), trained on prefix + line
      .fit_budget(prompt, params)     → params         new tokens capped to the GPT's context
      .sample(prompt, seeds, params)  → raw texts      one per seed; text i depends on seeds[i] only
      .log_likelihood(prompt, texts)  → [nats/token]   mean log p(text | prompt), for the ranker

Both families read the same records (pastcopy.py), so a product's prompt means the same to
either. Both batch all seeds of a prompt in one decoding loop, each row drawing from its own
generator (models/sampling.py), so line i depends on seeds[i] alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genloop.apps.adcopy.conditioning import CLOSE, OPEN, prefix, strip_prefix
from genloop.apps.adcopy.products import Product
from genloop.catalog import Catalog
from genloop.errors import GenloopError
from genloop.models.versions import LoadedModel, load_model_version
from genloop.workspace import Workspace

FAMILIES = ("gpt", "hf-causal-lm")
STOPS = ("\n", OPEN)
TEMPERATURE = 0.9
TOP_P = 0.95
CHARS_PER_WORD = 6
"""English words to characters (for a char model's token budget): ~5 letters + a space."""
MAX_NEW_TOKENS = 160


def product_prompt(product: Product) -> str:
    """The control prefix of `product`: required words first among its features, so the model
    (trained to mention what stands in `features`) is nudged to write them itself."""
    features = list(dict.fromkeys([*product.must_include, *product.features]))
    return prefix(
        language=product.language,
        category=product.category,
        tone=product.tone,
        audience=product.audience,
        features=features,
    )


def token_budget(product: Product, family: str) -> int:
    """New tokens to sample: room for the line plus slack the trimming can cut."""
    if family == "gpt":  # one token per character
        per_unit = 1.5 if product.language == "zh" else CHARS_PER_WORD
    else:  # subword tokens: ~1.3 a word in English, ~1.5 a character in Chinese
        per_unit = 1.5 if product.language == "zh" else 2.0
    return max(8, min(MAX_NEW_TOKENS, int(product.max_length * per_unit) + 8))


def sampling_params(product: Product, family: str, temperature: float = TEMPERATURE) -> dict[str, Any]:
    length = "max_tokens" if family == "gpt" else "max_new_tokens"
    return {
        "temperature": temperature,
        "top_p": TOP_P,
        length: token_budget(product, family),
        "stop": list(STOPS),
    }


@dataclass
class CopyModel:
    loaded: LoadedModel

    @property
    def version_id(self) -> str:
        return self.loaded.version_id

    @property
    def family(self) -> str:
        return self.loaded.family

    @classmethod
    def load(cls, workspace: Workspace, catalog: Catalog, reference: str) -> CopyModel:
        loaded = load_model_version(workspace, catalog, reference)
        if loaded.family not in FAMILIES:
            raise GenloopError(
                f"model {loaded.version_id} is a {loaded.family!r} model; ad copy needs a text model "
                f"({' or '.join(FAMILIES)}) trained on past copy",
                hint="train one: genloop adcopy train  (or --copy past.csv)",
            )
        return cls(loaded)

    def fit_budget(self, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` with the GPT's token budget cut so prompt + text fit its context: past
        block_size the window slides and every step recomputes the whole window (≈ 10× slower),
        and the model never saw a line that long in training anyway."""
        if self.family != "gpt":
            return params
        model: Any = self.loaded.model
        room = model.block_size - 1 - len(model.tokenizer.encode(prompt))  # 1: the leading <eos>
        return {**params, "max_tokens": max(1, min(int(params["max_tokens"]), room))}

    @torch.no_grad()
    def sample(self, prompt: str, seeds: Sequence[int], params: dict[str, Any]) -> list[str]:
        model: Any = self.loaded.model
        texts = model.sample(len(seeds), [prompt] * len(seeds), seed=seeds[0], seeds=list(seeds), **params)
        return [strip_prefix(text) if text.startswith(OPEN) else text.replace(CLOSE, "") for text in texts]

    @torch.no_grad()
    def log_likelihood(self, prompt: str, texts: Sequence[str]) -> list[float]:
        """Mean log p(token | prompt, earlier tokens) over each text's tokens (nats; 0 for empty)."""
        model: Any = self.loaded.model
        scores = []
        for text in texts:
            if self.family == "gpt":
                tokenizer = model.tokenizer
                context = [tokenizer.eos_id, *tokenizer.encode(prompt)]
                target = [*tokenizer.encode(text), tokenizer.eos_id]
                window = model.block_size
            else:
                context = model.encode_prompt(prompt)
                eos = int(model.tokenizer.eos_token_id)
                target = [*model.tokenizer.encode(text, add_special_tokens=False), eos]
                window = model.context_length or 512
            ids = (context + target)[-(window + 1) :]
            scored = min(len(target), len(ids) - 1)
            if scored <= 0:
                scores.append(0.0)
                continue
            inputs = torch.tensor([ids[:-1]])
            logits = model(inputs) if self.family == "gpt" else model.forward(inputs)
            log_probs = F.log_softmax(logits[0, -scored:].float(), dim=-1)
            chosen = log_probs.gather(1, torch.tensor(ids[-scored:])[:, None])
            scores.append(float(chosen.mean()))
        return scores

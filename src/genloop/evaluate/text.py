"""Evaluating a text model version (gpt, hf-causal-lm) against a text dataset version.

* Held-out likelihood: mean next-token NLL on the test split (`heldout_loss`, nats per
  token) → `heldout_perplexity` = exp(loss) and `bits_per_character` = loss · tokens /
  (ln 2 · characters), comparable across tokenizers (each record's <eos> counts as one
  character, so a char model's bpc is loss / ln 2).
* Samples: `text_samples` continuations of at most `max_new_tokens` tokens, prompted by the
  first PROMPT_CHARACTERS characters of held-out records (cycled; unprompted when there are
  none) → distinct-1..4, self-BLEU, repetition_4 (sample diversity), and verbatim overlap of
  the continuations with the training texts (`NgramIndex`, n = `verbatim_ngram`): longest
  copied span, share of n-grams seen in training, share of samples with a copy ≥ 50 tokens.
* Fairness probe: gendered terms co-occurring with occupation words in the samples
  (`balance_skew`: 0 balanced, 1 one-sided; counts per word beside it).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, GenloopError
from genloop.evaluate.fairness import gender_balance
from genloop.evaluate.text_metrics import bits_per_character, perplexity, text_metrics
from genloop.evaluate.verbatim import NgramIndex, verbatim_overlap
from genloop.models.versions import LoadedModel
from genloop.train.text import record_texts
from genloop.workspace import Workspace

TEXT_FAMILIES = ("gpt", "hf-causal-lm")
PROMPT_CHARACTERS = 16
TEMPERATURE = 0.8
COPY_THRESHOLD = 50  # tokens: a verbatim span this long is a copy, not a phrase
HF_BLOCK = 256  # tokens per held-out block for an hf-causal-lm model
PROBE_WORDS = (
    "doctor", "nurse", "engineer", "teacher", "scientist", "programmer", "manager", "cook",
    "医生", "护士", "工程师", "老师", "科学家", "程序员", "经理", "厨师",
)  # fmt: skip


def evaluate_text_model(
    workspace: Workspace, loaded: LoadedModel, dataset: DatasetHandle, cfg: EvaluateConfig
) -> dict[str, Any]:
    """Held-out loss / perplexity / bpc, sample diversity, verbatim overlap, balance probe."""
    if loaded.family not in TEXT_FAMILIES:
        raise GenloopError(
            f"{loaded.version_id} is a {loaded.family!r} model, not a text model",
            hint=f"text evaluation covers {', '.join(TEXT_FAMILIES)}",
        )
    train = list(record_texts(dataset, "train"))
    test = list(record_texts(dataset, "test"))
    if not train:
        raise DataError(
            f"dataset {dataset.id} has no train texts to compare samples with (verbatim overlap)",
            hint="evaluate on the dataset version the model was trained on",
        )
    metrics: dict[str, Any] = {"modality": "text", "family": loaded.family, "heldout_texts": len(test)}
    if test:
        metrics.update(heldout_metrics(loaded, test))
    samples = generate_samples(loaded, test, cfg)
    metrics.update(sample_metrics(samples, train, cfg))
    return metrics


@torch.no_grad()
def heldout_metrics(loaded: LoadedModel, texts: list[str]) -> dict[str, Any]:
    """heldout_loss (nats/token), heldout_perplexity, bits_per_character, heldout_tokens."""
    model: Any = loaded.model
    characters = sum(len(t) for t in texts) + len(texts)  # + one <eos> per record
    if loaded.family == "gpt":
        from genloop.train.recipes.gpt import heldout_loss
        from genloop.train.text import encode_stream

        stream = encode_stream(texts, model.tokenizer)
        if len(stream) < 2:
            raise DataError("the held-out texts have fewer than 2 tokens: no next-token loss to measure")
        if len(stream) >= model.block_size + 1:
            loss = heldout_loss(model, stream)
        else:  # shorter than one block: score it whole
            ids = stream.long()[None, :]
            loss = float(model(ids[:, :-1], ids[:, 1:]))
        tokens = len(stream)
    else:
        from genloop.train.recipes.hf_causal_lm import heldout_loss as hf_heldout_loss
        from genloop.train.recipes.hf_causal_lm import token_blocks

        block = min(model.context_length or HF_BLOCK, HF_BLOCK)
        blocks = token_blocks(texts, model.encode_document, block)
        if len(blocks) == 0:
            raise DataError("the held-out texts have fewer than 2 tokens: no next-token loss to measure")
        loss = hf_heldout_loss(model, blocks, batch_size=8)
        tokens = sum(len(model.encode_document(t)) for t in texts)
    return {
        "heldout_loss": loss,
        "heldout_perplexity": perplexity(min(loss, 50.0)),  # capped: a diverged model gives a number
        "bits_per_character": bits_per_character(loss, tokens=tokens, characters=characters),
        "heldout_tokens": tokens,
        "heldout_characters": characters,
    }


def generate_samples(loaded: LoadedModel, heldout: list[str], cfg: EvaluateConfig) -> list[str]:
    """`text_samples` continuations (seeded), prompted by the starts of held-out records."""
    model: Any = loaded.model
    prompts = (
        [heldout[i % len(heldout)][:PROMPT_CHARACTERS] for i in range(cfg.text_samples)] if heldout else []
    )
    length = "max_tokens" if loaded.family == "gpt" else "max_new_tokens"
    params = {length: cfg.max_new_tokens, "temperature": TEMPERATURE}
    if prompts:
        return list(model.generate_text(prompts, seed=cfg.seed, **params))
    return list(model.sample(cfg.text_samples, seed=cfg.seed, **params))


def sample_metrics(samples: list[str], train: list[str], cfg: EvaluateConfig) -> dict[str, Any]:
    """Diversity, verbatim overlap with `train`, and the balance probe of generated `samples`."""
    if not samples or not any(s.strip() for s in samples):
        raise DataError(
            f"the model generated {len(samples)} sample(s), all empty: nothing to measure",
            hint="check the model (does it emit <eos> at once?) or raise [evaluate].max_new_tokens",
        )
    metrics: dict[str, Any] = {"text_samples": len(samples), "max_new_tokens": cfg.max_new_tokens}
    if len(samples) >= 2:
        metrics.update(text_metrics(samples, seed=cfg.seed))
    index = NgramIndex.build(train, n=cfg.verbatim_ngram)
    summary, _ = verbatim_overlap(index, samples, threshold=COPY_THRESHOLD)
    metrics.update(summary.as_metrics())
    metrics["verbatim_ngram"] = cfg.verbatim_ngram
    metrics["verbatim_ngram_share"] = summary.mean_ngram_share  # the same under a fixed name
    metrics["verbatim_share_over_50_tokens"] = summary.share_over_threshold
    balance = gender_balance(samples, PROBE_WORDS)
    metrics["balance_skew"] = balance.skew
    metrics["balance_per_word"] = {
        word: {"male": b.male, "female": b.female}
        for word, b in balance.per_word.items()
        if b.male + b.female
    }
    if not math.isfinite(metrics.get("self_bleu", 0.0)):
        metrics["self_bleu"] = None
    return metrics

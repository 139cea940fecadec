"""Tiny real Hugging Face causal LMs saved to a folder, built offline in a second.

A byte-level BPE tokenizer trained on a few lines of Shakespeare (so any text encodes),
and a randomly initialised Llama or GPT-2 with hidden size 32 and 2 layers, each
written with `save_pretrained` exactly as a downloaded model folder would be.
"""

from __future__ import annotations

from pathlib import Path

import torch

SHAKESPEARE = Path(__file__).resolve().parents[2] / ".venv/lib/python3.11/site-packages/shksprdata/texts"


def shakespeare_lines(count: int, *, play: str = "hamlet_gut.txt", skip: int = 400) -> list[str]:
    """`count` non-empty lines of a play (past the Gutenberg header)."""
    text = (SHAKESPEARE / play).read_text(encoding="utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if len(line.strip()) > 20]
    return lines[skip : skip + count]


def _tokenizer(bos: str | None, eos: str) -> object:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    specials = [t for t in (bos, eos) if t]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(shakespeare_lines(200), vocab_size=320, min_frequency=2, special_tokens=specials)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=eos)


def tiny_causal_lm(folder: Path, *, architecture: str = "llama", seed: int = 0) -> Path:
    """Write a tiny `architecture` ("llama" or "gpt2") causal LM + tokenizer to `folder`."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if architecture == "llama":
        tokenizer = _tokenizer("<s>", "</s>")
        config = LlamaConfig(
            vocab_size=len(tokenizer),  # type: ignore[arg-type]
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            initializer_range=0.2,  # far from uniform next-token odds, so text depends on the weights
            bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
            eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        )
        model: torch.nn.Module = LlamaForCausalLM(config)
    elif architecture == "gpt2":
        tokenizer = _tokenizer(None, "<|endoftext|>")
        config = GPT2Config(
            vocab_size=len(tokenizer),  # type: ignore[arg-type]
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=256,
            initializer_range=0.2,
            bos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
            eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        )
        model = GPT2LMHeadModel(config)
    else:
        raise ValueError(architecture)
    model.save_pretrained(folder)  # type: ignore[operator]
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    return folder


def tiny_encoder(folder: Path) -> Path:
    """A tiny BERT encoder (not a causal LM) saved like a sentence-embedding model."""
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    return folder

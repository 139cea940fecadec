"""Tiny untrained models of every generating family, registered as versions in a workspace.

Untrained weights are enough for what generation tests check: bytes, seeds, batching,
storage, review. Each builder seeds torch so the weights are the same in every run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from genloop.catalog import Catalog
from genloop.catalog.models import Run
from genloop.models.versions import register_model_version
from genloop.workspace import Workspace

CLASSES = ["a", "b", "c"]


def _vae() -> nn.Module:
    from genloop.models.vae import ConditionalVAE

    return ConditionalVAE(classes=CLASSES, latent_dim=4, hidden_channels=4, image_size=16)


def _gan() -> nn.Module:
    from genloop.models.gan import DCGAN

    return DCGAN(classes=CLASSES, image_size=16, latent_dim=8, hidden_channels=8, conditioning="projection")


def _ddpm() -> nn.Module:
    from genloop.models.ddpm import DiffusionModel

    return DiffusionModel(
        classes=CLASSES,
        image_size=8,
        block_channels=[8, 16],
        attention_levels=[],
        train_timesteps=20,
        sample_steps=4,
    )


def _gpt() -> nn.Module:
    from genloop.models.gpt import GPT, GPTConfig
    from genloop.models.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.train(["hello world, the quick brown fox.", "你好，世界。"])
    config = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=tokenizer.vocab_size)
    return GPT.build(config, tokenizer)


def _music() -> nn.Module:
    from genloop.models.music import MusicConfig, MusicTransformer

    return MusicTransformer.build(
        MusicConfig(classes=["major", "minor"], n_layer=1, n_head=2, n_embd=16, block_size=32, dropout=0.0)
    )


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "vae": _vae,
    "gan": _gan,
    "ddpm": _ddpm,
    "gpt": _gpt,
    "music": _music,
}


def register_tiny(
    workspace: Workspace, catalog: Catalog, family: str, tmp: Path, *, name: str | None = None
) -> str:
    """A tiny `family` model saved and registered as a version (champion of `name`); its id."""
    name = name or f"tiny-{family}"
    torch.manual_seed(0)
    model = BUILDERS[family]()
    weights = tmp / f"weights-{name}"
    model.save(weights)  # type: ignore[operator]
    run_id = f"run-{name}"
    with catalog.session() as session:
        if session.get(Run, run_id) is None:
            session.add(Run(id=run_id, model_name=name, family=family, config={}, path=f"/runs/{run_id}"))
    return register_model_version(
        workspace, catalog, name=name, family=family, run_id=run_id, weights_dir=weights
    )

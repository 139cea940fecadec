"""`evaluate_model`: pick the evaluator of a model version's family, store the metrics in the catalog.

    family          evaluator                         headline metrics
    vae, gan, ddpm  evaluate.image.evaluate_image_model   fd (+ fd_real_floor), kid, precision/recall
    gpt,            evaluate.text.evaluate_text_model     heldout_loss, bits_per_character,
    hf-causal-lm                                          verbatim overlap, distinct-n, self-BLEU
    music           evaluate.music.evaluate_music_model   heldout_loss, pitch_class_tv, novelty_4

Each evaluator returns a flat JSON-able dict with at least `modality` and `family`; the row in
`evaluations` links it to the model version and the dataset version it was measured on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genloop.catalog import Catalog
from genloop.catalog.models import Evaluation
from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.models.versions import LoadedModel, load_model_version
from genloop.workspace import Workspace

Evaluator = Callable[[Workspace, LoadedModel, DatasetHandle, EvaluateConfig], dict[str, Any]]


@dataclass(frozen=True)
class EvaluationResult:
    model_version_id: str
    dataset_version_id: str
    metrics: dict[str, Any]


def evaluator_for(family: str) -> Evaluator:
    """The evaluator of a model family; a GenloopError naming the supported ones otherwise."""
    from genloop.evaluate.image import IMAGE_FAMILIES, evaluate_image_model
    from genloop.evaluate.music import evaluate_music_model
    from genloop.evaluate.text import TEXT_FAMILIES, evaluate_text_model

    table: dict[str, Evaluator] = {
        **dict.fromkeys(IMAGE_FAMILIES, evaluate_image_model),
        **dict.fromkeys(TEXT_FAMILIES, evaluate_text_model),
        "music": evaluate_music_model,
    }
    if family not in table:
        raise GenloopError(
            f"no evaluator for the {family!r} model family",
            hint=f"genloop evaluates {', '.join(sorted(table))}",
        )
    return table[family]


def evaluate_model(
    workspace: Workspace, catalog: Catalog, model_ref: str, dataset: DatasetHandle, cfg: EvaluateConfig
) -> EvaluationResult:
    """Evaluate `model_ref` ("digits-v2", "digits@challenger", "digits") on `dataset`; store the result."""
    loaded = load_model_version(workspace, catalog, model_ref)
    metrics = json_safe(evaluator_for(loaded.family)(workspace, loaded, dataset, cfg))
    with catalog.session() as session:
        session.add(
            Evaluation(model_version_id=loaded.version_id, dataset_version_id=dataset.id, metrics=metrics)
        )
    return EvaluationResult(loaded.version_id, dataset.id, metrics)


def json_safe(value: Any) -> Any:
    """`value` with NaN and ±inf floats replaced by None, at any depth.

    JSON has no NaN: PostgreSQL refuses it in a JSON column (SQLite stores it, unreadably for
    other tools). A metric that is undefined (e.g. no sample of a class) is stored as null,
    which the promotion gates treat as a failing, missing metric.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def summary_lines(m: dict[str, Any]) -> tuple[str, list[str]]:
    """One headline line per modality (FD with its floor; loss/bpc + verbatim; pitch distance)."""

    def number(key: str, spec: str = ".3f") -> str:
        value = m.get(key)
        return "n/a" if value is None else format(value, spec)

    modality = m.get("modality", "image")
    if modality == "text":
        return (
            f"held-out loss {number('heldout_loss')} nats/token, {number('bits_per_character')} bits/char; "
            f"verbatim: longest copy {number('verbatim_max_longest_match', '.0f')} tokens, "
            f"{number('verbatim_ngram_share', '.1%')} of {m.get('verbatim_ngram')}-grams seen in training",
            [
                f"{m.get('text_samples')} samples: distinct-2 {number('distinct_2')}, "
                f"self-BLEU {number('self_bleu')}"
            ],
        )
    if modality == "music":
        return (
            f"pitch-class histogram distance {number('pitch_class_tv')} (TV); held-out loss "
            f"{number('heldout_loss')} nats/event; novelty {number('novelty_4', '.1%')}",
            [f"{m.get('music_samples')} generated pieces vs the training MIDI"],
        )
    headline = (
        f"FD {number('fd', '.2f')} (real-vs-real floor {number('fd_real_floor', '.2f')}), "
        f"KID {number('kid', '.4f')}, precision {number('precision', '.2f')} / "
        f"recall {number('recall', '.2f')} "
        f"on {m.get('samples', 0):,} samples"
    )
    details = [
        f"{m.get('feature_network', '')}; "
        f"classifier test accuracy {number('classifier_test_accuracy', '.1%')}"
    ]
    if "heldout_elbo" in m:
        details.append(f"held-out ELBO {m['heldout_elbo']:.1f} nats/image")
    if "conditional_accuracy" in m:
        details.append(
            f"conditional accuracy {m['conditional_accuracy']:.1%} "
            f"(worst class {m['worst_class_accuracy']:.1%}); "
            f"worst-class FD {number('fd_worst', '.2f')} ({m.get('fd_worst_class', 'n/a')})"
        )
    if "class_share_tv" in m:
        details.append(f"class shares vs data: total variation {m['class_share_tv']:.3f}")
    return headline, details

"""Evaluating a music model version against a MIDI dataset version.

* `heldout_loss`: mean next-event NLL (nats per event) over windows of the test split
  (the recipe's own measure, at most EVAL_WINDOWS windows).
* `text_samples` generated pieces of at most `max_new_tokens` events (classes cycled,
  seeded) against the training MIDI: pitch-class histogram distance (`pitch_class_tv`,
  `pitch_class_kl`), note density, polyphony, key consistency with the data's values beside
  them (`data_*`), and `novelty_4` (share of 4-note interval patterns in no training piece).
"""

from __future__ import annotations

from typing import Any

import torch

from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, GenloopError
from genloop.evaluate.music_metrics import music_metrics
from genloop.models.versions import LoadedModel
from genloop.workspace import Workspace

EVAL_WINDOWS = 256


def evaluate_music_model(
    workspace: Workspace, loaded: LoadedModel, dataset: DatasetHandle, cfg: EvaluateConfig
) -> dict[str, Any]:
    """Held-out loss and the music sample metrics of a `music` model version."""
    if loaded.family != "music":
        raise GenloopError(f"{loaded.version_id} is a {loaded.family!r} model, not a music model")
    from genloop.train.recipes.music_windows import heldout_loss, tokenize_split

    model: Any = loaded.model
    training = [r.payload for r in dataset.iter_records("train") if r.modality == "music"]
    if not training:
        raise DataError(
            f"dataset {dataset.id} has no MIDI records in its train split to compare samples with",
            hint="evaluate on the music dataset version the model was trained on",
        )
    metrics: dict[str, Any] = {"modality": "music", "family": loaded.family}
    test = tokenize_split(dataset, "test", loaded.classes, model.tokenizer)
    metrics["heldout_pieces"] = len(test.tokens)
    if test.tokens:
        metrics["heldout_loss"] = heldout_loss(model, test, EVAL_WINDOWS, torch.device("cpu"))
    generated = model.generate_midi(cfg.text_samples, seed=cfg.seed, max_tokens=cfg.max_new_tokens)
    if not generated:
        raise DataError("the model generated no MIDI files: nothing to measure")
    metrics.update(music_metrics(generated, training))
    metrics["music_samples"] = len(generated)
    metrics["max_new_tokens"] = cfg.max_new_tokens
    return metrics

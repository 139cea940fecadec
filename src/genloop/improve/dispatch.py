"""One entry point for every improvement recipe: `improve_model` (used by `genloop improve` and each
`genloop loop` round). Picks the recipe from `[improve].recipe` and the champion's family.

    image families (vae, gan, ddpm)   liked · reward-weighted · rejection-sampling
    text / music (gpt, music, hf)     sft · dpo · kto
    auto                              reward-weighted for images (liked while there are no
                                      dislikes to train a reward model on); dpo for text and
                                      music (kto without pairs, sft with only edits)

    feedback events ─► preference dataset version (feedback_data.py)
        images:  ─► reward model on the evaluate classifier's features (saved beside the dataset)
                 ─► reward-weighted / rejection-sampled fine-tune (image_recipes.py)
        text, music: items ─► Liked / PreferencePair / Thumb (the completion without its AI label)
                 ─► sft / dpo / kto from the champion, the champion's training data mixed in
                    (text_recipes.py) ─► saved through a TrainingSession, like any training run
                 conditional music models also re-estimate their class prior p(y) from the
                 items' observed like-rates (`feedback_prior`), as the image recipe does from rewards

Every recipe registers a challenger model version (alias `challenger`, parent the champion)
whose run lists the feedback dataset version with role `feedback` (lineage to the events),
and returns an `ImproveOutcome`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, get_args

import torch
from sqlalchemy import select

from genloop.catalog import Catalog
from genloop.catalog.models import ContentItem, ModelVersion
from genloop.config import GenloopConfig, ImproveRecipe, LabelConfig, TrainConfig
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.errors import DataError, GenloopError, NotFoundError
from genloop.evaluate.classifier import Classifier, real_data_classifier
from genloop.generate.labels.formats.text import body_text
from genloop.improve.feedback_data import (
    Preferences,
    ScoredItem,
    build_preference_dataset,
    collect_preferences,
    liked_items,
)
from genloop.improve.image_recipes import (
    ImageRecipeResult,
    rejection_sampling_finetune,
    reward_weighted_finetune,
    reward_weighted_prior,
)
from genloop.improve.recipe import evaluate_pair, improve, training_dataset_id
from genloop.improve.reward import save_reward_model, train_reward_model, workspace_classifier
from genloop.improve.text_recipes import (
    Completion,
    GPTScorer,
    HFScorer,
    Improved,
    ImproveOptions,
    Liked,
    MusicScorer,
    PreferencePair,
    Scorer,
    Thumb,
    dpo,
    kto,
    sft,
)
from genloop.models.gpt import GPT
from genloop.models.hf_causal_lm import HFCausalLM
from genloop.models.label_prior import normalise_prior, read_label_prior, write_label_prior
from genloop.models.music import MusicTransformer
from genloop.models.versions import LoadedModel, load_model_version, resolve_model_version
from genloop.progress import say
from genloop.train.runs import dataset_uses
from genloop.train.session import TrainingSession
from genloop.train.text import record_texts
from genloop.workspace import Workspace

IMAGE_FAMILIES = ("vae", "gan", "ddpm")
SEQUENCE_FAMILIES = ("gpt", "music", "hf-causal-lm")
IMAGE_RECIPES = ("liked", "reward-weighted", "rejection-sampling")
SEQUENCE_RECIPES = ("sft", "dpo", "kto")
EDIT_WEIGHT = 2.0
"""SFT weight of a viewer's corrected text (a like weighs its score, usually 1): the correction is gold."""


@dataclass(frozen=True)
class ImproveOutcome:
    recipe: str
    """The recipe that ran (never "auto")."""
    champion: str
    challenger: str
    feedback_dataset: str | None
    feedback_events: int
    champion_metrics: dict[str, Any] | None = None
    challenger_metrics: dict[str, Any] | None = None
    """Held-out metrics on the champion's training dataset (None when [improve].evaluate is off)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Recipe numbers: reward before/after, the challenger's class prior, pair margins, losses…"""


@dataclass(frozen=True)
class ImprovePlan:
    """What `improve_model` would do now (`genloop improve --dry-run`): nothing is written."""

    recipe: str
    champion: str
    family: str
    feedback_events: int
    counts: dict[str, int]
    """What the recipe would train on: liked, positives, negatives, pairs, edits, thumbs…"""


# -- choosing the recipe -------------------------------------------------------------------------------


def recipes_for(family: str) -> tuple[str, ...]:
    """The recipes that fit a model family; a GenloopError for a family genloop cannot improve."""
    if family in IMAGE_FAMILIES:
        return IMAGE_RECIPES
    if family in SEQUENCE_FAMILIES:
        return SEQUENCE_RECIPES
    raise GenloopError(
        f"genloop has no improvement recipe for the {family!r} model family",
        hint=f"improvable families: {', '.join(IMAGE_FAMILIES + SEQUENCE_FAMILIES)}",
    )


def check_recipe(recipe: str, family: str) -> None:
    """A GenloopError naming the recipes that fit `family` when `recipe` is not one of them."""
    known = get_args(ImproveRecipe)
    allowed = recipes_for(family)
    if recipe not in known:
        raise GenloopError(f"unknown improve recipe {recipe!r}", hint=f"choose one of: {', '.join(known)}")
    if recipe != "auto" and recipe not in allowed:
        raise GenloopError(
            f"recipe {recipe!r} does not fit {family!r} models",
            hint=f"for {family} models set [improve].recipe (or --recipe) to auto, {', '.join(allowed)}",
        )


def auto_recipe(family: str, preferences: Preferences, examples: SequenceFeedback | None = None) -> str:
    """images: reward-weighted when there are likes and dislikes to train a reward model on, else
    liked; text and music: dpo with pairs, else kto with thumbs, else sft (edits only)."""
    if family in IMAGE_FAMILIES:
        return "reward-weighted" if preferences.positives and preferences.negatives else "liked"
    if examples is not None and examples.pairs:
        return "dpo"
    if examples is not None and examples.thumbs:
        return "kto"
    return "sft"


def _champion(catalog: Catalog, config: GenloopConfig) -> tuple[str, str]:
    """(champion version id, family)."""
    champion = resolve_model_version(catalog, f"{config.project.name}@champion")
    with catalog.session() as session:
        row = session.get(ModelVersion, champion)
        if row is None:
            raise NotFoundError(f"model version {champion!r} is not in the catalog")
        return champion, row.family


def _safety(config: GenloopConfig) -> Any:
    """The publishing channel's safety checks per modality (None: the generate stage's defaults)."""
    return config.channel_policy(config.publish.channel).safety


# -- the entry points ----------------------------------------------------------------------------------


def plan_improvement(
    workspace: Workspace, catalog: Catalog, config: GenloopConfig, *, recipe: str | None = None
) -> ImprovePlan:
    """The recipe `improve_model` would run and the feedback it would use (reads, writes nothing)."""
    champion, family = _champion(catalog, config)
    chosen = recipe or config.improve.recipe
    check_recipe(chosen, family)
    name = config.project.name
    if chosen != "liked":
        preferences = collect_preferences(workspace, catalog, name, safety=_safety(config))
        chosen, examples = _resolve(workspace, catalog, config, chosen, champion, family, preferences)
        if chosen != "liked":
            counts = examples.counts() if examples else _preference_counts(preferences)
            return ImprovePlan(chosen, champion, family, len(preferences.event_ids), counts)
    liked, events = liked_items(workspace, catalog, name)
    return ImprovePlan("liked", champion, family, events, {"liked": len(liked)})


def _preference_counts(preferences: Preferences) -> dict[str, int]:
    return {
        "positives": len(preferences.positives),
        "negatives": len(preferences.negatives),
        "pairs": len(preferences.pairs),
        "edits": len(preferences.edits),
    }


def improve_model(
    workspace: Workspace, catalog: Catalog, config: GenloopConfig, *, seed: int = 0
) -> ImproveOutcome:
    """Fine-tune `{project.name}@champion` on its feedback with `[improve].recipe` → a challenger."""
    champion, family = _champion(catalog, config)
    recipe: str = config.improve.recipe
    check_recipe(recipe, family)
    if recipe == "liked":
        return _liked(workspace, catalog, config)
    found = collect_preferences(workspace, catalog, config.project.name, safety=_safety(config))
    recipe, examples = _resolve(workspace, catalog, config, recipe, champion, family, found)
    if recipe == "liked":  # auto, for images with likes but no dislikes yet
        return _liked(workspace, catalog, config)
    preferences = build_preference_dataset(workspace, catalog, found)
    if preferences.dataset is None:  # build_preference_dataset always writes one; a guard for the type
        raise DataError(f"no feedback dataset was written for model {config.project.name!r}")
    if examples is None:
        return _improve_images(workspace, catalog, config, recipe, champion, preferences.dataset, seed)
    return _improve_sequences(
        workspace, catalog, config, recipe, champion, preferences, preferences.dataset, examples, seed
    )


def _resolve(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    recipe: str,
    champion: str,
    family: str,
    preferences: Preferences,
) -> tuple[str, SequenceFeedback | None]:
    """The recipe "auto" stands for, and the text/music examples (None for images)."""
    examples = None
    if family in SEQUENCE_FAMILIES:
        loaded = load_model_version(workspace, catalog, champion)
        examples = sequence_feedback(catalog, preferences, loaded, config.generate.labels)
    return (auto_recipe(family, preferences, examples) if recipe == "auto" else recipe), examples


# -- images --------------------------------------------------------------------------------------------


def _liked(workspace: Workspace, catalog: Catalog, config: GenloopConfig) -> ImproveOutcome:
    result = improve(workspace, catalog, config, evaluate=config.improve.evaluate)
    return ImproveOutcome(
        "liked",
        result.champion,
        result.challenger,
        result.feedback_dataset,
        result.feedback_events,
        result.champion_metrics or None,
        result.challenger_metrics or None,
        {"liked": result.liked},
    )


def reward_classifier(
    workspace: Workspace, config: GenloopConfig, loaded: LoadedModel, base: DatasetHandle
) -> Classifier:
    """The reward's feature network: the evaluate stage's cached classifier, else one trained now
    on the champion's training data exactly as `genloop evaluate` would (and cached for it)."""
    try:
        return workspace_classifier(workspace)
    except NotFoundError:
        classes = loaded.classes or base.classes
        if not classes:
            raise
    say(f"no cached classifier: training the evaluate stage's classifier on {base.id} for the reward")
    return real_data_classifier(
        workspace,
        base,
        classes=list(classes),
        image_size=int(loaded.config.get("image_size", 28)),
        channels=int(loaded.config.get("channels", 1)),
        epochs=config.evaluate.classifier_epochs,
        seed=config.evaluate.seed,
    )


def _improve_images(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    recipe: str,
    champion: str,
    preferences: DatasetHandle,
    seed: int,
) -> ImproveOutcome:
    """Reward model on the feedback, then the reward-shaped fine-tune (reward-weighted unless
    `recipe` is rejection-sampling)."""
    settings = config.improve
    loaded = load_model_version(workspace, catalog, champion)
    base = open_dataset_version(workspace, catalog, training_dataset_id(catalog, champion))
    reward, report = train_reward_model(
        preferences, reward_classifier(workspace, config, loaded, base), seed=seed
    )
    reward_path = save_reward_model(reward, report, preferences)
    common: dict[str, Any] = {"seed": seed, "evaluate": settings.evaluate}
    result: ImageRecipeResult
    if recipe == "rejection-sampling":
        result = rejection_sampling_finetune(
            workspace, catalog, config, preferences, reward.score,
            samples_per_class=settings.samples_per_class, keep_fraction=settings.keep_fraction, **common,
        )  # fmt: skip
    else:
        recipe = "reward-weighted"
        result = reward_weighted_finetune(
            workspace, catalog, config, preferences, reward.score,
            samples_per_class=settings.samples_per_class, beta=settings.reward_beta, **common,
        )  # fmt: skip
    details = {
        "reward_model": workspace.relative(reward_path),
        "reward_auc": report.heldout_auc,
        "reward_accuracy": report.heldout_accuracy,
        "reward_report": asdict(report),
        "champion_reward": result.champion_reward,
        "challenger_reward": result.challenger_reward,
        "challenger_prior": result.challenger_prior,
        "shaped_dataset": result.shaped_dataset,
        "shaped_records": result.shaped_records,
    }
    events = int(preferences.manifest.get("feedback", {}).get("events", 0))
    return ImproveOutcome(
        recipe, result.champion, result.challenger, preferences.id, events,
        result.champion_metrics, result.challenger_metrics, details,
    )  # fmt: skip


# -- text and music: feedback → examples ---------------------------------------------------------------


@dataclass
class SequenceFeedback:
    """The preference data of a text or music model in the shapes sft / dpo / kto take."""

    liked: list[Liked]
    """Positives (weight = their score) and edits (weight EDIT_WEIGHT)."""
    pairs: list[PreferencePair]
    thumbs: list[Thumb]
    skipped: dict[str, int]
    """Items left out and why: not-midi (a rendered audio file), empty (nothing to score)."""

    def counts(self) -> dict[str, int]:
        return {
            "liked": len(self.liked),
            "pairs": len(self.pairs),
            "thumbs": len(self.thumbs),
            **{f"skipped_{why}": n for why, n in self.skipped.items()},
        }


def completion_text(data: bytes, labels: LabelConfig) -> str:
    """A generated text file as the model wrote it: no AIGC front matter, no visible label line."""
    text = body_text(data)
    line = labels.text_line
    if text.lstrip().startswith(line):
        text = text.lstrip()[len(line) :].lstrip("\n")
    elif text.rstrip().endswith(line):
        text = text.rstrip()[: -len(line)].rstrip("\n")
    return text


def _prompt(condition: dict[str, Any], loaded: LoadedModel) -> str:
    """Text models continue a prompt; a music model's prompt is its class label ("" when none)."""
    if loaded.family == "music":
        label = condition.get("label")
        return str(label) if label is not None and str(label) in loaded.classes else ""
    return str(condition.get("prompt") or "")


def _completion(item: ScoredItem, loaded: LoadedModel, labels: LabelConfig) -> tuple[Completion | None, str]:
    """(the item's completion, "") or (None, why it cannot be used: "not-midi", "empty")."""
    data = item.path.read_bytes()
    if loaded.family == "music":
        is_midi = item.path.suffix.lower() in (".mid", ".midi") or data[:4] == b"MThd"
        return (data, "") if is_midi else (None, "not-midi")  # a rendered WAV has no events
    text = completion_text(data, labels)
    return (text, "") if text.strip() else (None, "empty")


def sequence_feedback(
    catalog: Catalog, preferences: Preferences, loaded: LoadedModel, labels: LabelConfig
) -> SequenceFeedback:
    """Scored items, pairs and edits → Liked (positives, edits), PreferencePair, Thumb."""
    examples: dict[str, tuple[str, Completion]] = {}
    skipped: dict[str, int] = {}
    for item in preferences.items:
        completion, why = _completion(item, loaded, labels)
        if completion is None:
            skipped[why] = skipped.get(why, 0) + 1
        else:
            examples[item.content_id] = (_prompt(item.condition, loaded), completion)
    scores = {item.content_id: item.score for item in preferences.items}
    liked = [Liked(*examples[cid], weight=scores[cid]) for cid in examples if scores[cid] > 0]
    conditions = _conditions(catalog, [edit.content_id for edit in preferences.edits])
    for edit in preferences.edits:
        text = completion_text(edit.text.encode("utf-8"), labels)
        if loaded.family != "music" and text.strip():  # a music model cannot learn from edited text
            liked.append(Liked(_prompt(conditions.get(edit.content_id, {}), loaded), text, EDIT_WEIGHT))
    pairs = [
        PreferencePair(examples[p.chosen][0], examples[p.chosen][1], examples[p.rejected][1])
        for p in preferences.pairs
        if p.chosen in examples and p.rejected in examples
    ]
    thumbs = [Thumb(*examples[cid], desirable=scores[cid] > 0) for cid in examples]
    return SequenceFeedback(liked, pairs, thumbs, skipped)


def _conditions(catalog: Catalog, content_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not content_ids:
        return {}
    with catalog.session() as session:
        rows = session.execute(
            select(ContentItem.id, ContentItem.condition).where(ContentItem.id.in_(content_ids))
        ).all()
    return {str(cid): dict(condition or {}) for cid, condition in rows}


# -- text and music: train and register ----------------------------------------------------------------


def scorer_for(loaded: LoadedModel, base: DatasetHandle) -> Scorer[Any]:
    """The family's scorer, with the champion's training data (train split) for the LM-loss mix."""
    model = loaded.model
    if isinstance(model, GPT):
        return GPTScorer(model, original=list(record_texts(base, "train")))
    if isinstance(model, HFCausalLM):
        return HFScorer(model, original=list(record_texts(base, "train")))
    if isinstance(model, MusicTransformer):
        pieces = [
            (record.label if record.label and record.label in model.classes else "", record.payload)
            for record in base.iter_records("train")
            if record.modality == "music"
        ]
        return MusicScorer(model, original=pieces)
    raise GenloopError(
        f"{loaded.version_id} is a {loaded.family!r} model: sft, dpo and kto need text or music"
    )


def improve_options(config: GenloopConfig, seed: int) -> ImproveOptions:
    settings = config.improve
    return ImproveOptions(
        steps=settings.steps,
        learning_rate=settings.learning_rate,
        beta=settings.preference_beta,
        original_weight=settings.original_weight,
        seed=seed,
    )


def _examples_for(recipe: str, examples: SequenceFeedback) -> Sequence[Any]:
    """What `recipe` trains on; a DataError saying what is missing when that is nothing."""
    chosen: Sequence[Any] = (
        examples.pairs if recipe == "dpo" else examples.thumbs if recipe == "kto" else examples.liked
    )
    if not chosen:
        what = {"dpo": "preference pairs (two items of one prompt, one liked over the other)",
                "kto": "liked or disliked items", "sft": "liked or edited items"}[recipe]  # fmt: skip
        raise DataError(
            f"{recipe} needs {what}; the feedback holds {examples.counts()}",
            hint='collect more feedback, or set [improve].recipe = "auto" to pick what the feedback supports',
        )
    return chosen


def _train_sequences(
    recipe: str, scorer: Scorer[Any], examples: SequenceFeedback, options: ImproveOptions
) -> Improved[Any]:
    if recipe == "dpo":
        return dpo(scorer, examples.pairs, options)
    if recipe == "kto":
        return kto(scorer, examples.thumbs, options)
    return sft(scorer, examples.liked, options)


def item_reward(item: ScoredItem) -> float:
    """An item's like-rate per look (its score's sign when no looks were recorded)."""
    looks = item.counts.get("impression", 0)
    if looks:
        return item.counts.get("like", 0) / looks
    return 1.0 if item.score > 0 else 0.0


def feedback_prior(loaded: LoadedModel, preferences: Preferences, beta: float) -> dict[str, float]:
    """The class prior a conditional sequence model (music) learns from its published items:

        p_new(c) ∝ p_old(c) · mean_{items i of class c} exp(β · zᵢ)

    with zᵢ the standardised like-rate per look of item i — the reward-weighted maximum-likelihood
    p(y) of the image recipes (image_recipes.reward_weighted_prior), with the audience's observed
    reactions as the reward. DPO/KTO/SFT move p(x | y); this moves p(y), so the loop draws more
    of the classes people like. Without labelled feedback the champion's prior carries over.
    """
    old = read_label_prior(loaded.path, loaded.classes)
    labelled = [item for item in preferences.items if item.label in loaded.classes]
    if len(labelled) < 2:
        return old
    rewards = torch.tensor([item_reward(item) for item in labelled], dtype=torch.float64)
    z = (rewards - rewards.mean()) / rewards.std().clamp_min(1e-6)
    y = torch.tensor([loaded.classes.index(str(item.label)) for item in labelled])
    return normalise_prior(reward_weighted_prior(old, loaded.classes, y, torch.exp(beta * z)), loaded.classes)


def _improve_sequences(
    workspace: Workspace,
    catalog: Catalog,
    config: GenloopConfig,
    recipe: str,
    champion: str,
    preferences: Preferences,
    feedback: DatasetHandle,
    examples: SequenceFeedback,
    seed: int,
) -> ImproveOutcome:
    """sft / dpo / kto from the champion, registered through a TrainingSession as the challenger."""
    _examples_for(recipe, examples)  # fail before a run starts when the recipe has nothing to train on
    loaded = load_model_version(workspace, catalog, champion)
    base = open_dataset_version(workspace, catalog, training_dataset_id(catalog, champion))
    options = improve_options(config, seed)
    session = TrainingSession(
        workspace,
        catalog,
        family=loaded.family,
        model_name=config.project.name,
        cfg=TrainConfig(
            family=loaded.family,
            epochs=1,
            max_steps=options.steps,
            batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            weight_decay=options.weight_decay,
            grad_clip=options.grad_clip,
            seed=seed,
            tensorboard=False,
        ),
        model_config=loaded.config,
        # repeat 0: the original data is mixed in by the scorer, the feedback by the recipe
        uses=dataset_uses(base, [(feedback, "feedback", 0)]),
        parent_id=champion,
        run_extra={"recipe": recipe, "options": asdict(options), "examples": examples.counts()},
    )
    trained: list[Improved[Any]] = []

    def body() -> Any:
        loaded.model.to(session.device)
        trained.append(_train_sequences(recipe, scorer_for(loaded, base), examples, options))
        return trained[0].model.cpu()

    result = session.run(body, alias="challenger", feedback_count=len(preferences.event_ids))
    details: dict[str, Any] = {"examples": examples.counts(), "run": result.run_id}
    if loaded.classes:
        prior = feedback_prior(loaded, preferences, config.improve.reward_beta)
        child = load_model_version(workspace, catalog, result.model_version_id)
        details["challenger_prior"] = write_label_prior(
            child.path, prior, child.classes, source=f"{recipe} fine-tune of {champion}: feedback-weighted"
        )
    if trained:
        stats = trained[0].stats
        details.update(before=stats.before, after=stats.after, losses=stats.losses)
        details["original_losses"] = stats.original_losses
    else:
        details["reused"] = True  # the identical run had completed before
    champion_metrics, challenger_metrics = (
        evaluate_pair(workspace, catalog, config, champion, result.model_version_id, base)
        if config.improve.evaluate
        else (None, None)
    )
    return ImproveOutcome(
        recipe, champion, result.model_version_id, feedback.id, len(preferences.event_ids),
        champion_metrics, challenger_metrics, details,
    )  # fmt: skip

"""`improve_model` and `genloop improve` on a text model: a tiny char GPT trained on fortunes, and
viewers who like a line that ends in "!" and dislike the same words ending in "." (pairs of one
prompt). DPO through `improve_model` registers a loadable challenger that prefers the "!" lines;
the CLI runs KTO (`--recipe kto`), reports a dry run, and names the recipes that fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, FeedbackEvent, ModelVersion, Publication, RunDataset
from genloop.catalog.session import close_all
from genloop.config import LabelConfig
from genloop.data.datasets import DatasetHandle
from genloop.errors import GenloopError
from genloop.generate.labels.explicit import mark_text
from genloop.generate.labels.formats import text as text_format
from genloop.improve.dispatch import completion_text, improve_model
from genloop.improve.text_recipes import GPTScorer, PreferencePair, pair_margins
from genloop.models.gpt import GPT
from genloop.models.versions import load_model_version, resolve_model_version
from genloop.train import train_model
from genloop.workspace import DATABASE_URL_ENV, Workspace
from support.text import fortune_texts, text_dataset

CONFIG = """
[project]
name = "fortunes"

[train]
family = "gpt"
preset = "tiny"
tensorboard = false

[improve]
recipe = "dpo"
steps = 16
learning_rate = 1e-3
preference_beta = 0.1
evaluate = false

[channels.gallery]
safety = {text = []}
"""


@dataclass
class Fortunes:
    workspace: Workspace
    catalog: Catalog
    data: DatasetHandle
    champion: str
    pairs: list[PreferencePair]


def _pairs(corpus: list[str], count: int) -> list[PreferencePair]:
    """Prompt: a line's first two words; its next four words ending in "!" over the same with "."."""
    lines = [line.strip() for text in corpus for line in text.splitlines() if len(line.split()) >= 6]
    pairs: dict[str, PreferencePair] = {}  # one pair per prompt: two would pair across
    for line in lines:
        words = line.split()
        body, prompt = " ".join(words[2:6]), " ".join(words[:2]) + " "
        pairs.setdefault(prompt, PreferencePair(prompt, body + "!", body + "."))
    return list(pairs.values())[:count]


def _generated_file(text: str) -> bytes:
    """The text as genloop publishes it: the visible AI line first, the AIGC front matter on top."""
    marked = mark_text(text, LabelConfig().text_line)
    return text_format.write(marked.encode("utf-8"), '{"Label":"1"}')


def _plant_feedback(ws: Workspace, catalog: Catalog, champion: str, pairs: list[PreferencePair]) -> None:
    items = [(p.prompt, p.chosen, "like") for p in pairs] + [(p.prompt, p.rejected, "dislike") for p in pairs]
    with catalog.session() as s:
        for i, (prompt, completion, _) in enumerate(items):
            path = ws.path("content", f"t{i:03d}.txt")
            path.write_bytes(_generated_file(completion))
            s.add(ContentItem(id=f"t{i:03d}", model_version_id=champion, modality="text",
                              path=ws.relative(path), condition={"prompt": prompt}, seed=i,
                              params={}, labels={}))  # fmt: skip
        s.flush()
        for i in range(len(items)):
            s.add(Publication(id=f"u{i:03d}", content_item_id=f"t{i:03d}", channel="gallery"))
        s.flush()
        for i, (_, _, kind) in enumerate(items):
            s.add(FeedbackEvent(publication_id=f"u{i:03d}", kind=kind, viewer_id="reader",
                                created_at=datetime.now(UTC)))  # fmt: skip


@pytest.fixture(scope="module")
def fortunes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fortunes]:
    root: Path = tmp_path_factory.mktemp("dispatch-text") / "ws"
    root.mkdir()
    (root / "genloop.toml").write_text(CONFIG, encoding="utf-8")
    saved = {k: os.environ.get(k) for k in (DATABASE_URL_ENV, "GENLOOP_NUM_THREADS")}
    os.environ.pop(DATABASE_URL_ENV, None)
    os.environ["GENLOOP_NUM_THREADS"] = "1"
    try:
        ws = Workspace(root)
        catalog = open_catalog(ws.database_url)
        corpus = fortune_texts(6000)
        data = text_dataset(ws, catalog, corpus, name="fortunes")
        champion = train_model(ws, catalog, data, ws.config.train, model_name="fortunes").model_version_id
        pairs = _pairs(corpus, 12)
        _plant_feedback(ws, catalog, champion, pairs)
        yield Fortunes(ws, catalog, data, champion, pairs)
    finally:
        close_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_completion_text_drops_the_labels_genloop_adds() -> None:
    assert completion_text(_generated_file("the sea is calm!"), LabelConfig()) == "the sea is calm!"
    assert completion_text(b"plain text", LabelConfig()) == "plain text"


def test_dpo_registers_a_loadable_challenger_that_prefers_the_liked_texts(fortunes: Fortunes) -> None:
    ws, catalog = fortunes.workspace, fortunes.catalog
    outcome = improve_model(ws, catalog, ws.config, seed=1)
    assert outcome.recipe == "dpo" and outcome.champion == fortunes.champion
    assert outcome.details["examples"]["pairs"] == len(fortunes.pairs) == 12
    assert outcome.feedback_events == 24
    # registered: alias challenger, parent = champion, the feedback dataset in its run's lineage
    assert resolve_model_version(catalog, "fortunes@challenger") == outcome.challenger
    with catalog.session() as s:
        version = s.get(ModelVersion, outcome.challenger)
        assert version is not None and version.parent_id == fortunes.champion and version.family == "gpt"
        assert version.feedback_count == 24
        roles = {r.role: r.dataset_version_id for r in s.scalars(
            select(RunDataset).where(RunDataset.run_id == version.run_id))}  # fmt: skip
    assert roles == {"train": fortunes.data.id, "feedback": outcome.feedback_dataset}
    run_config = json.loads(ws.path("runs", outcome.details["run"], "config.json").read_text())
    assert run_config["extra"]["recipe"] == "dpo" and run_config["init_from"] == fortunes.champion
    # the saved weights, loaded afresh, prefer the chosen texts more than the champion does
    champion = load_model_version(ws, catalog, fortunes.champion).model
    challenger = load_model_version(ws, catalog, outcome.challenger).model
    assert isinstance(champion, GPT) and isinstance(challenger, GPT)
    before = pair_margins(GPTScorer(champion), fortunes.pairs)
    after = pair_margins(GPTScorer(challenger), fortunes.pairs)
    assert after["margin"] > before["margin"] + 1.0, (before, after)
    assert after["accuracy"] > before["accuracy"]
    assert outcome.details["after"]["margin"] == pytest.approx(after["margin"], abs=1e-3)


def test_an_image_recipe_for_a_text_model_names_the_ones_that_fit(fortunes: Fortunes) -> None:
    config = fortunes.workspace.config
    wrong = config.model_copy(
        update={"improve": config.improve.model_copy(update={"recipe": "reward-weighted"})}
    )
    with pytest.raises(GenloopError, match="'reward-weighted' does not fit 'gpt'") as error:
        improve_model(fortunes.workspace, fortunes.catalog, wrong)
    assert "auto, sft, dpo, kto" in (error.value.hint or "")


def test_genloop_improve_with_a_recipe_option_end_to_end(fortunes: Fortunes) -> None:
    """The real CLI in-process (CliRunner) for the runs; a subprocess for the error, as a user sees it."""
    from typer.testing import CliRunner

    from genloop.cli.main import app

    root, runner = str(fortunes.workspace.root), CliRunner()
    dry = runner.invoke(app, ["improve", "--recipe", "kto", "--dry-run", "-w", root], env={"COLUMNS": "200"})
    assert dry.exit_code == 0, dry.output
    assert (
        "would run the kto recipe on fortunes@champion" in dry.output and "24 feedback events" in dry.output
    )
    ran = runner.invoke(app, ["improve", "--recipe", "kto", "-w", root], env={"COLUMNS": "200"})
    assert ran.exit_code == 0, ran.output
    challenger = resolve_model_version(fortunes.catalog, "fortunes@challenger")
    assert f"{challenger} (alias challenger) from {fortunes.champion} by the kto recipe" in ran.output
    assert "desirable logp per token (after)" in ran.output and "genloop models promote" in ran.output
    env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    env.update(GENLOOP_NO_PROGRESS="1", COLUMNS="200")
    command = [sys.executable, "-m", "genloop.cli.main", "improve", "--recipe", "rejection-sampling"]
    wrong = subprocess.run([*command, "-w", root], env=env, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
    assert "does not fit 'gpt'" in wrong.stderr and "auto, sft, dpo, kto" in wrong.stderr

"""`genloop loop` on a text model: a tiny char GPT trained on Debian fortunes, two prompts from
[generate].prompts, and `short-cheerful` readers reacting through the HTTP API. Two rounds: the
champion alone, then champion and a preference-trained challenger side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.conftest import make_workspace

from genloop.catalog import open_catalog
from genloop.catalog.models import ContentItem, ModelVersion, Publication
from genloop.catalog.session import close_all
from genloop.loop.audience import SimulatedAudience
from genloop.loop.rounds import run_loop
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import DATABASE_URL_ENV
from support.text import fortune_texts

PROMPTS = ["The ", "A "]
CONFIG = f"""
[project]
name = "fortunes"

[collect]
source = "fortunes"
limit = 300
test_fraction = 0.1

[train]
family = "gpt"
preset = "tiny"
tensorboard = false

[evaluate]
text_samples = 8
max_new_tokens = 40

[generate]
prompts = {PROMPTS!r}
max_new_tokens = 40

[improve]
recipe = "auto"
steps = 4
learning_rate = 1e-3

[loop]
per_round = 12
min_exposure = 5

[loop.audience]
persona = "short-cheerful"
viewers = 8
items_per_viewer = 12
base_rate = 0.05

[channels.gallery]
safety = {{text = []}}
"""


def test_two_text_rounds_publish_prompted_texts_and_train_a_preference_challenger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fortune_texts()  # skips when Debian's fortunes are not installed
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    ws = make_workspace(tmp_path / "ws", CONFIG)
    catalog = open_catalog(ws.database_url)
    try:
        run_pipeline(ws, catalog, until="evaluate")
        audience = SimulatedAudience(ws, ws.config.loop.audience)
        first, second = run_loop(ws, catalog, ws.config, audience, rounds=2)

        # round 1: the champion fills every slot, with texts continuing the configured prompts
        assert first.challenger is None and set(first.stats["items"]) == {"champion"}
        assert len(first.stats["publications"]["champion"]) == 12
        assert first.stats["feedback"]["sent"] > 0 and first.like_rate is not None
        improve = first.stats["improve"]
        assert improve["recipe"] in ("dpo", "kto", "sft"), improve
        challenger = improve["challenger"]
        with catalog.session() as session:
            parent = session.scalar(select(ModelVersion.parent_id).where(ModelVersion.id == challenger))
            items = session.execute(
                select(ContentItem.modality, ContentItem.condition)
                .join(Publication, Publication.content_item_id == ContentItem.id)
                .where(Publication.arm == "loop-r1-champion")
            ).all()
        assert parent == first.champion
        assert {modality for modality, _ in items} == {"text"}
        assert {condition["prompt"] for _, condition in items} == set(PROMPTS)

        # round 2: the challenger is shown beside the champion, each arm its half of the slots
        assert second.challenger == challenger
        published = second.stats["publications"]
        assert len(published["champion"]) == len(published["challenger"]) == 6
        assert second.arm("challenger")["impressions"] > 0
    finally:
        close_all()

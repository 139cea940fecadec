"""`genloop loop` on a music model: real Bach chorales, a tiny class-conditional MusicTransformer,
the `major-key` persona reacting through the HTTP API to the MIDI the gallery serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from tests.conftest import make_workspace

from genloop.catalog import open_catalog
from genloop.catalog.models import ContentItem, ModelVersion
from genloop.catalog.session import close_all
from genloop.loop.audience import SimulatedAudience
from genloop.loop.rounds import run_loop
from genloop.models.versions import resolve_model_version
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import DATABASE_URL_ENV

pytest.importorskip("music21")
pytest.importorskip("mido")

MUSIC_LOOP_CONFIG = """
[project]
name = "chorales"

[collect]
source = "bach-chorales"
modality = "music"
limit = 10
test_fraction = 0.2

[train]
family = "music"
preset = "tiny"
max_steps = 10

[evaluate]
text_samples = 3
max_new_tokens = 48

[generate]
max_new_tokens = 48

[improve]
steps = 2

[loop]
per_round = 12
min_exposure = 4

[loop.audience]
persona = "major-key"
viewers = 6
items_per_viewer = 12
"""


@pytest.mark.slow  # ~1 min: ten chorales through music21, two tiny trainings, two rounds
def test_music_rounds_publish_midi_the_persona_reads_and_train_a_preference_challenger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    ws = make_workspace(tmp_path / "ws", MUSIC_LOOP_CONFIG)
    catalog = open_catalog(ws.database_url)
    try:
        run_pipeline(ws, catalog, until="evaluate")
        champion = resolve_model_version(catalog, "chorales@champion")
        audience = SimulatedAudience(ws, ws.config.loop.audience)

        (first,) = run_loop(ws, catalog, ws.config, audience, rounds=1)
        items = first.stats["items"]["champion"]
        assert len(first.stats["publications"]["champion"]) == len(items) == 12
        with catalog.session() as session:
            rows = session.execute(
                select(ContentItem.path, ContentItem.condition).where(ContentItem.id.in_(items))
            ).all()
        # a conditional music model draws its labels from its class prior; the files are MIDI
        assert {row.condition["label"] for row in rows} <= {"major", "minor"}
        assert all(Path(row.path).suffix == ".mid" for row in rows)
        # the persona read those files over HTTP: a file it could not read would have no appeal at all
        feedback = first.stats["feedback"]
        assert feedback["source"] == "major-key" and feedback["sent"] > 0 and not feedback["notes"]
        assert feedback["round"]["likes"] > 0

        improve = first.stats["improve"]
        assert improve["recipe"] in ("dpo", "kto", "sft"), improve
        challenger = improve["challenger"]
        with catalog.session() as session:
            version = session.get(ModelVersion, challenger)
            assert version is not None and version.family == "music" and version.parent_id == champion
        assert improve["challenger_metrics"]["heldout_loss"] > 0
        prior = improve["details"]["challenger_prior"]  # p(y) re-estimated from the observed like-rates
        assert set(prior) == {"major", "minor"} and sum(prior.values()) == pytest.approx(1.0)

        # round 2 shows the challenger beside the champion, both generating through draw
        (second,) = run_loop(ws, catalog, ws.config, audience, rounds=1)
        assert second.challenger == challenger
        assert set(second.stats["publications"]) == {"champion", "challenger"}
        assert second.arm("challenger")["impressions"] > 0
    finally:
        close_all()

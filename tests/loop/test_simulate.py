"""Simulated audiences act through the public HTTP API, and their hidden taste shows in the data."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy import func, select
from tests.server.conftest import PUBLISHED_AT, SeededCatalog, seed_catalog

from genloop.catalog.models import ContentItem, FeedbackEvent, Publication
from genloop.errors import GenloopError
from genloop.feedback.personas import (
    BoldStrokes,
    MajorKey,
    ShortCheerful,
    ViewedItem,
    cheerfulness,
    key_mode,
    persona_from_spec,
)
from genloop.feedback.simulate import AudienceConfig, simulate_audience
from genloop.server.app import create_app
from genloop.workspace import Workspace


def stroke_png(width: int) -> bytes:
    """A white ring on black: `width` decides how much ink the image has."""
    image = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(image).ellipse((12, 12, 52, 52), outline=255, width=width)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def publish_strokes(seeded: SeededCatalog) -> dict[str, bool]:
    """10 bold and 10 thin images, interleaved in the listing; publication id → bold?"""
    bold_of: dict[str, bool] = {}
    with seeded.catalog.session() as session:
        for index in range(20):
            bold = index % 2 == 0
            content_id = f"s{index:02d}" + "0" * 30
            path = seeded.workspace.path("content", content_id[:2], f"{content_id}.png")
            path.write_bytes(stroke_png(12 if bold else 1))
            session.add(
                ContentItem(
                    id=content_id,
                    model_version_id="digits-v2",
                    modality="image",
                    path=str(path),
                    condition={},
                    seed=index,
                    params={},
                    labels={},
                )
            )
            session.flush()
            publication_id = f"pub-s{index:02d}"
            session.add(
                Publication(
                    id=publication_id,
                    content_item_id=content_id,
                    channel="gallery",
                    published_at=PUBLISHED_AT + timedelta(hours=1, minutes=index),
                )
            )
            bold_of[publication_id] = bold
    return bold_of


def stored_events(seeded: SeededCatalog) -> int:
    with seeded.catalog.session() as session:
        return int(session.scalar(select(func.count()).select_from(FeedbackEvent)) or 0)


def test_a_persona_that_likes_bold_strokes_likes_them_through_the_api(sqlite_workspace: Workspace) -> None:
    seeded = seed_catalog(sqlite_workspace)
    bold_of = publish_strokes(seeded)
    config = AudienceConfig(viewers=8, items_per_viewer=40, attention=100.0, seed=3)
    with TestClient(create_app(seeded.workspace)) as client:
        report = simulate_audience(client, BoldStrokes(), config, round=0)

        # Its hidden taste shows: bold items are liked far more often than thin ones.
        def rate(bold: bool) -> float:
            tallies = [t for pub, t in report.per_publication.items() if bold_of.get(pub) is bold]
            return sum(t.likes for t in tallies) / max(1, sum(t.impressions for t in tallies))

        assert rate(True) > 0.6 and rate(False) < 0.25
        assert report.sent == stored_events(seeded) > 0  # every reaction went through the API
        # The same round again (a loop killed mid-round) stores nothing twice.
        again = simulate_audience(client, BoldStrokes(), config, round=0)
        assert again.replayed == again.sent == report.sent and stored_events(seeded) == report.sent
        # The server's own like counts agree with what the audience did.
        listing = client.get("/api/v1/publications", params={"limit": 200}).json()["items"]
        served = {item["publication_id"]: item["likes"] for item in listing}
        assert all(served[pub] == tally.likes for pub, tally in report.per_publication.items())


def test_position_bias_means_fewer_looks_further_down(sqlite_workspace: Workspace) -> None:
    seeded = seed_catalog(sqlite_workspace)
    publish_strokes(seeded)
    config = AudienceConfig(viewers=20, attention=4.0, impressions=False, seed=1)
    with TestClient(create_app(seeded.workspace)) as client:
        report = simulate_audience(client, BoldStrokes(), config)
        listing = [item["publication_id"] for item in client.get("/api/v1/publications").json()["items"]]
    looks = [report.per_publication[pub].impressions for pub in listing]
    assert looks[0] == 20 and sum(looks[:5]) > 2 * sum(looks[5:])


def test_text_and_music_personas() -> None:
    cheerful = ViewedItem("p1", "text", b"What a lovely sunny day, friend!", 0)
    gloomy = ViewedItem("p2", "text", ("The cold dark war brought grief and pain. " * 6).encode(), 0)
    persona = ShortCheerful()
    assert persona.appeal(cheerful) > 0.6 > 0.1 > persona.appeal(gloomy)
    labelled = "---\nAIGC: {}\n---\n【AI生成】本内容由人工智能生成 / AI-generated content\nWhat a lovely day!"
    assert persona.appeal(ViewedItem("p3", "text", labelled.encode(), 0)) > 0.6  # the marker is not read
    assert cheerfulness("今天天气真好，我们一起去公园玩，太开心了！") > cheerfulness(
        "太糟糕了，真让人失望和难过。"
    )
    major = [0, 4, 7, 0, 4, 7, 2, 5, 9, 11, 0]  # C major arpeggios and scale tones
    minor = [9, 0, 4, 9, 0, 4, 2, 5, 8, 11, 9]  # A harmonic minor
    assert key_mode(np.bincount(major, minlength=12).astype(float))[0] == "major"
    assert key_mode(np.bincount(minor, minlength=12).astype(float))[0] == "minor"
    mido = pytest.importorskip("mido")
    tune = mido.MidiFile()
    track = mido.MidiTrack()
    for note in major:
        track.append(mido.Message("note_on", note=60 + note, velocity=80, time=0))
        track.append(mido.Message("note_off", note=60 + note, velocity=0, time=240))
    tune.tracks.append(track)
    buffer = io.BytesIO()
    tune.save(file=buffer)
    assert MajorKey().appeal(ViewedItem("p4", "music", buffer.getvalue(), 0)) > 0.5


def test_persona_specs_and_bad_configs_fail_clearly() -> None:
    assert persona_from_spec("bold-strokes:0.2").name == "bold-strokes"
    assert persona_from_spec("major-key").name == "major-key"
    with pytest.raises(GenloopError, match="unknown persona"):
        persona_from_spec("likes-everything")
    with pytest.raises(GenloopError, match="recogniser"):
        persona_from_spec("likes-class:7")
    with pytest.raises(GenloopError, match="not a number"):
        persona_from_spec("short-cheerful:many")
    with pytest.raises(GenloopError, match="probability"):
        AudienceConfig(base_rate=1.5)

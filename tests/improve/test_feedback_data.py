"""Feedback → preference data on a planted event stream: weights, pairs, edits, dedup, safety, lineage."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import SHOWS_KEY, ContentItem, FeedbackEvent, Publication, RunDataset
from genloop.errors import DataError
from genloop.improve.feedback_data import (
    collect_preferences,
    event_weight,
    liked_items,
    preference_dataset,
)
from genloop.workspace import Workspace
from support.mnist import digit_png, mnist_dataset
from support.tiny_generators import register_tiny

NO_CHECKS: dict[str, list[str]] = {"image": [], "text": []}
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _png(index: int, *, tweak: bool = False, note: str | None = None) -> bytes:
    """MNIST digit `index`, re-encoded (a text chunk changes the bytes, not the pixels)."""
    with Image.open(io.BytesIO(digit_png(index)[0])) as image:
        pixels = np.array(image.convert("L"))
    if tweak:
        pixels[10:12, 10:12] = 255 - pixels[10:12, 10:12]  # a near-copy: 4 pixels changed
    buffer = io.BytesIO()
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("note", note or "generated")
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _item(ws: Workspace, catalog: Catalog, version: str, cid: str, payload: bytes, condition: dict[str, str],
          modality: str = "image") -> str:  # fmt: skip
    suffix = ".png" if modality == "image" else ".txt"
    path = ws.path("content", cid + suffix)
    path.write_bytes(payload)
    with catalog.session() as s:
        s.add(ContentItem(id=cid, model_version_id=version, modality=modality, path=ws.relative(path),
                          condition=condition, seed=0, params={}, labels={}))  # fmt: skip
        s.flush()
        s.add(Publication(id="p-" + cid, content_item_id=cid, channel="gallery"))
    return "p-" + cid


def _event(catalog: Catalog, pub: str, kind: str, *, days: float = 0.0, value: float | None = None,
           text: str | None = None) -> None:  # fmt: skip
    with catalog.session() as s:
        s.add(FeedbackEvent(publication_id=pub, kind=kind, value=value, viewer_id="v", text=text,
                            created_at=NOW - timedelta(days=days)))  # fmt: skip


@pytest.fixture
def planted(sqlite_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Catalog, str]:
    ws = sqlite_workspace
    catalog = open_catalog(ws.database_url)
    version = register_tiny(ws, catalog, "vae", tmp_path, name="digits")
    train = mnist_dataset(ws, catalog, per_class=3)  # digits 0..2 of each class are training data
    with catalog.session() as s:
        s.add(RunDataset(run_id="run-digits", dataset_version_id=train.id, role="train"))
    one = {"label": "a"}
    pubs = {
        "liked": _item(ws, catalog, version, "c-liked", _png(3003), one),
        "disliked": _item(ws, catalog, version, "c-disliked", _png(3503), one),
        "rated": _item(ws, catalog, version, "c-rated", _png(4003), {"label": "b"}),
        "old": _item(ws, catalog, version, "c-old", _png(4503), {"label": "b"}),
        "seen": _item(ws, catalog, version, "c-seen", _png(1003), one),
        "copy": _item(ws, catalog, version, "c-copy", _png(0, note="re-encoded"), one),
        "near": _item(ws, catalog, version, "c-near", _png(1, tweak=True), one),
        "text": _item(ws, catalog, version, "c-text", b"a sad poem", {"prompt": "poem"}, "text"),
    }
    _event(catalog, pubs["liked"], "impression")
    _event(catalog, pubs["liked"], "like")
    _event(catalog, pubs["liked"], "click")
    _event(catalog, pubs["disliked"], "dislike")
    _event(catalog, pubs["disliked"], "flag")
    _event(catalog, pubs["rated"], "rating", value=5)
    _event(catalog, pubs["old"], "like", days=14)
    _event(catalog, pubs["seen"], "impression")
    _event(catalog, pubs["seen"], "comment", text="hm")
    _event(catalog, pubs["copy"], "like")
    _event(catalog, pubs["near"], "like")
    _event(catalog, pubs["text"], "edit", text="a cheerful poem")
    return ws, catalog, "digits"


def test_event_weights_and_half_life() -> None:
    assert event_weight("like", None, 0, 14) == 1.0 and event_weight("dislike", None, 0, 14) == -1.0
    assert event_weight("rating", 5, 0, 14) == 1.0 and event_weight("rating", 1, 0, 14) == -1.0
    assert event_weight("rating", 3, 0, 14) == 0.0 and event_weight("flag", None, 0, 14) == -2.0
    assert event_weight("click", None, 0, 14) == pytest.approx(0.2)
    assert event_weight("like", None, 14, 14) == pytest.approx(0.5)
    assert event_weight("impression", None, 0, 14) == 0.0 == event_weight("comment", None, 0, 14)


def test_planted_stream_scores_pairs_edits_dedup_and_safety(planted: tuple[Workspace, Catalog, str]) -> None:
    ws, catalog, name = planted
    prefs = collect_preferences(ws, catalog, name, now=NOW, safety={"image": ["near-duplicate"], "text": []})
    scores = {i.content_id: i.score for i in prefs.items}
    # c-text has an edit (−0.5): a negative, and its correction is gold.
    assert scores == pytest.approx(
        {"c-liked": 1.2, "c-rated": 1.0, "c-old": 0.5, "c-disliked": -3.0, "c-text": -0.5}
    )
    assert {i.content_id for i in prefs.positives} == {"c-liked", "c-rated", "c-old"}
    # The exact copy of a training digit (other PNG bytes, same pixels) is a duplicate; the
    # near-copy fails the generate stage's near-duplicate check; the impressions-only item is neutral.
    assert prefs.excluded == {"duplicate": 1, "neutral": 1, "unsafe": 1}
    pairs = {(p.prompt, p.chosen, p.rejected) for p in prefs.pairs}
    assert pairs == {("a", "c-liked", "c-disliked"), ("b", "c-rated", "c-old")}
    assert [(e.content_id, e.prompt, e.text) for e in prefs.edits] == [("c-text", "poem", "a cheerful poem")]
    assert prefs.event_counts["like"] == 4 and len(prefs.event_ids) == 12


def test_preference_dataset_records_lineage_to_events(planted: tuple[Workspace, Catalog, str]) -> None:
    ws, catalog, name = planted
    prefs = preference_dataset(ws, catalog, name, now=NOW, safety=NO_CHECKS)
    assert prefs.dataset is not None
    manifest = prefs.dataset.manifest
    assert manifest["stage"] == "feedback" and manifest["feedback"]["event_ids"] == prefs.event_ids
    assert manifest["feedback"]["excluded"] == {"duplicate": 1, "neutral": 1}  # no safety checks asked
    records = {
        r.meta["content_id"]: r for r in prefs.dataset.iter_records() if r.meta.get("reaction") != "edit"
    }
    assert records["c-disliked"].meta["reaction"] == "dislike" and records["c-disliked"].meta["weight"] == 3.0
    assert len(records["c-liked"].meta["events"]) == 3  # impression, like, click
    edits = [r for r in prefs.dataset.iter_records() if r.meta.get("reaction") == "edit"]
    assert [r.payload for r in edits] == [b"a cheerful poem"]
    # The older view still works on the same events.
    liked, events = liked_items(ws, catalog, name)
    assert {i.content_id for i in liked} == {"c-liked", "c-old", "c-copy", "c-near"} and events == 5


def test_no_usable_feedback_is_a_clear_error(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    version = register_tiny(sqlite_workspace, catalog, "vae", tmp_path, name="digits")
    with pytest.raises(DataError, match="no feedback events"):
        collect_preferences(sqlite_workspace, catalog, "digits")
    pub = _item(sqlite_workspace, catalog, version, "c-1", _png(3003), {"label": "a"})
    _event(catalog, pub, "impression")
    with pytest.raises(DataError, match=r"no usable feedback .*\(1 neutral\)"):
        collect_preferences(sqlite_workspace, catalog, "digits", safety=NO_CHECKS)


def test_pairs_rank_by_score_per_look_not_by_exposure(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """Shown first to everyone, an item piles up likes; per look, the other one is liked more."""
    ws = sqlite_workspace
    catalog = open_catalog(ws.database_url)
    version = register_tiny(ws, catalog, "vae", tmp_path, name="digits")
    one = {"label": "a"}
    exposed = _item(ws, catalog, version, "c-exposed", _png(3003), one)  # 3 likes in 12 looks
    rare = _item(ws, catalog, version, "c-rare", _png(3503), one)  # 2 likes in 3 looks
    unlogged = _item(ws, catalog, version, "c-unlogged", _png(4003), {"label": "b"})  # no impressions
    plain = _item(ws, catalog, version, "c-plain", _png(4503), {"label": "b"})
    for pub, looks, likes in ((exposed, 12, 3), (rare, 3, 2)):
        for _ in range(looks):
            _event(catalog, pub, "impression")
        for _ in range(likes):
            _event(catalog, pub, "like")
    for _ in range(2):
        _event(catalog, unlogged, "like")
    _event(catalog, plain, "like")
    prefs = collect_preferences(ws, catalog, "digits", now=NOW, safety=NO_CHECKS)
    per_look = {i.content_id: i.per_look for i in prefs.items}
    assert per_look == pytest.approx({"c-exposed": 0.25, "c-rare": 2 / 3, "c-unlogged": 2.0, "c-plain": 1.0})
    pairs = {(p.chosen, p.rejected): p.margin for p in prefs.pairs}
    # raw scores (3 vs 2) would pair them the other way round
    assert pairs == pytest.approx({("c-rare", "c-exposed"): 2 / 3 - 0.25, ("c-unlogged", "c-plain"): 1.0})


def test_pairs_share_the_prompt_whatever_else_the_condition_notes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Items of one prompt pair up even when each condition carries its own notes (rank, repairs)."""
    ws = sqlite_workspace
    catalog = open_catalog(ws.database_url)
    version = register_tiny(ws, catalog, "gpt", tmp_path, name="copy")
    prompt = "⟦en|shoes|playful⟧"
    good = _item(ws, catalog, version, "c-good", b"Run light!", {"prompt": prompt, "rank": 1}, "text")
    bad = _item(ws, catalog, version, "c-bad", b"Shoes exist.", {"prompt": prompt, "rank": 2}, "text")
    other = _item(ws, catalog, version, "c-other", b"Bags.", {"prompt": "⟦en|bags⟧", "rank": 1}, "text")
    _event(catalog, good, "like")
    _event(catalog, bad, "dislike")
    _event(catalog, other, "dislike")
    prefs = collect_preferences(ws, catalog, "copy", now=NOW, safety=NO_CHECKS)
    assert [(p.prompt, p.chosen, p.rejected) for p in prefs.pairs] == [(prompt, "c-good", "c-bad")]


def test_a_composed_item_s_reactions_count_for_the_item_it_shows_too(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An ad creative (an image model's item) shows a copy model's line: a like on the creative is a
    like for the line when the copy model learns, and stays the image's own (both catalogs: the
    attribution reads condition["shows"] in SQL)."""
    ws = workspace
    catalog = open_catalog(ws.database_url)
    copy = register_tiny(ws, catalog, "gpt", tmp_path, name="copy")
    pictures = register_tiny(ws, catalog, "vae", tmp_path, name="pictures")
    prompt = "⟦en|shoes⟧"
    line_a = _item(ws, catalog, copy, "c-line-a", b"Run light!", {"prompt": prompt}, "text")
    _item(ws, catalog, copy, "c-line-b", b"Shoes exist.", {"prompt": prompt}, "text")  # only in a creative
    shows = {"prompt": "a shoe"}
    creative_a = _item(ws, catalog, pictures, "c-creative-a", _png(3003), {**shows, SHOWS_KEY: "c-line-a"})
    creative_b = _item(ws, catalog, pictures, "c-creative-b", _png(3503), {**shows, SHOWS_KEY: "c-line-b"})
    for _ in range(2):
        _event(catalog, creative_a, "like")
    _event(catalog, line_a, "like")  # the line published alone as well: both sources add up
    _event(catalog, creative_b, "dislike")

    lines = collect_preferences(ws, catalog, "copy", now=NOW, safety=NO_CHECKS)
    counts = {item.content_id: item.counts for item in lines.items}
    assert counts == {"c-line-a": {"like": 3}, "c-line-b": {"dislike": 1}}
    assert [(p.prompt, p.chosen, p.rejected) for p in lines.pairs] == [(prompt, "c-line-a", "c-line-b")]

    images = collect_preferences(ws, catalog, "pictures", now=NOW, safety=NO_CHECKS)
    assert {item.content_id: item.counts for item in images.items} == {
        "c-creative-a": {"like": 2},
        "c-creative-b": {"dislike": 1},
    }

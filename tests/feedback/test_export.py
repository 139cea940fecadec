"""Exports: events as JSONL and Parquet, preference pairs in TRL's prompt/chosen/rejected shape."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem, ModelVersion, Publication, Run
from genloop.feedback.events import record_feedback
from genloop.feedback.export import (
    iter_events,
    preference_pairs,
    viewer_pseudonym,
    write_events_parquet,
    write_jsonl,
)
from genloop.workspace import Workspace

TEXTS = {
    "t-best": ("秋季新品，温暖上市", {"prompt": "slogan"}),
    "t-mid": ("New autumn range", {"prompt": "slogan"}),
    "t-worst": ("Buy stuff", {"prompt": "slogan"}),
    "t-alone": ("Only one for this prompt", {"prompt": "other"}),
}


def seed_texts(workspace: Workspace) -> Catalog:
    catalog = open_catalog(workspace.database_url)
    with catalog.session() as session:
        session.add(Run(id="run", model_name="adcopy", family="gpt", config={}, path="/x"))
        session.flush()
        session.add(
            ModelVersion(id="adcopy-v1", name="adcopy", version=1, family="gpt", run_id="run", path="/x")
        )
        session.flush()
        for content_id, (text, condition) in TEXTS.items():
            path = workspace.path("content", "te", f"{content_id}.txt")
            path.write_text(text, encoding="utf-8")
            session.add(
                ContentItem(
                    id=content_id,
                    model_version_id="adcopy-v1",
                    modality="text",
                    path=workspace.relative(path),
                    condition=condition,
                    seed=0,
                    params={},
                    labels={},
                )
            )
            session.flush()
            session.add(
                Publication(id=f"pub-{content_id}", content_item_id=content_id, channel="gallery", arm="A")
            )
    return catalog


@pytest.fixture
def texts(workspace: Workspace) -> tuple[Workspace, Catalog]:
    catalog = seed_texts(workspace)
    votes = [
        ("t-best", "like"),
        ("t-best", "like"),
        ("t-mid", "like"),
        ("t-mid", "dislike"),
        ("t-worst", "dislike"),
        ("t-alone", "like"),
    ]
    for number, (content_id, kind) in enumerate(votes):
        record_feedback(catalog, publication_id=f"pub-{content_id}", kind=kind, viewer_id=f"v{number}")
    record_feedback(catalog, publication_id="pub-t-worst", kind="rating", value=1, viewer_id="r1")
    record_feedback(
        catalog,
        publication_id="pub-t-worst",
        kind="edit",
        text="Autumn is here: 新品上市",
        viewer_id="editor-1",
    )
    return workspace, catalog


def test_preference_pairs_from_votes_and_edits(texts: tuple[Workspace, Catalog]) -> None:
    workspace, catalog = texts
    pairs = list(preference_pairs(workspace, catalog))
    assert all(list(pair) == ["prompt", "chosen", "rejected"] for pair in pairs)
    vote_pairs = [(p["chosen"], p["rejected"]) for p in pairs[:3]]
    best, mid, worst = (TEXTS[k][0] for k in ("t-best", "t-mid", "t-worst"))
    assert vote_pairs == [(best, worst), (best, mid), (mid, worst)]  # biggest score gap first
    assert {p["prompt"] for p in pairs[:3]} == {"slogan"}  # "other" has one item: no pair
    assert pairs[3] == {"prompt": "slogan", "chosen": "Autumn is here: 新品上市", "rejected": worst}
    assert len(pairs) == 4
    assert len(list(preference_pairs(workspace, catalog, max_pairs_per_condition=1))) == 2
    assert list(preference_pairs(workspace, catalog, model_name="no-such-model")) == []


def test_events_export_jsonl_and_parquet(texts: tuple[Workspace, Catalog], tmp_path: Path) -> None:
    _, catalog = texts
    out = tmp_path / "events.jsonl"
    assert write_jsonl(iter_events(catalog), out) == 8
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    first = rows[0]
    assert set(first) == {
        "id", "created_at", "publication_id", "content_item_id", "model_version_id",
        "channel", "arm", "kind", "value", "text", "viewer", "meta",
    }  # fmt: skip
    assert (first["model_version_id"], first["arm"], first["kind"]) == ("adcopy-v1", "A", "like")
    assert first["viewer"] == viewer_pseudonym("v0") != "v0"  # never the cookie value itself
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
    edits = list(iter_events(catalog, kinds=["edit"]))
    assert [row["text"] for row in edits] == ["Autumn is here: 新品上市"]

    parquet = tmp_path / "events.parquet"
    assert write_events_parquet(iter_events(catalog), parquet) == 8
    table = pq.read_table(parquet)
    assert table.num_rows == 8
    assert str(table.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    assert table.column("kind").to_pylist()[-1] == "edit"

"""`lineage()`: id resolution, down to every source record's license, up to feedback — both catalogs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.lineage import SCHEMA, licenses_in, lineage, lineage_for_content
from genloop.catalog.models import (
    ContentItem,
    DatasetSource,
    DatasetVersion,
    FeedbackEvent,
    ModelAlias,
    ModelVersion,
    Publication,
    Run,
    RunDataset,
)
from genloop.data.datasets import open_dataset_version
from genloop.errors import GenloopError, NotFoundError
from genloop.feedback.events import record_feedback
from genloop.improve.recipe import improve
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace

DOWN_KEYS = {"content", "model_version", "dataset_chain", "sources", "licenses"}
UP_KEYS = {"dataset_versions", "runs", "model_versions", "content", "totals", "events", "events_truncated"}


def test_published_item_reaches_the_license_of_every_source_record(workspace: Workspace) -> None:
    """The demo pipeline, feedback, a fine-tune; then lineage from each end of the chain."""
    catalog = open_catalog(workspace.database_url)
    out = {r.stage: r.outputs for r in run_pipeline(workspace, catalog)}
    with catalog.session() as s:
        publications = s.scalars(select(Publication).order_by(Publication.id)).all()
    for publication in publications[:3]:
        record_feedback(catalog, publication_id=publication.id, kind="like", viewer_id="a")
    record_feedback(catalog, publication_id=publications[0].id, kind="dislike", viewer_id="b")
    result = improve(workspace, catalog, workspace.config)

    # Down from a published item: every record of every dataset version it descends from
    # (read from the Parquet shards, not the catalog's summary) has its source and license listed.
    found = lineage(catalog, publications[0].content_item_id[:10])
    assert found["schema"] == SCHEMA and found["subject"]["kind"] == "content"
    assert set(found["down"]) == DOWN_KEYS and set(found["up"]) == UP_KEYS
    down = found["down"]
    chain = down["model_version"]["run"]["datasets"][0]["chain"]
    assert [v["stage"] for v in chain] == ["annotate", "clean", "collect"]
    assert chain[-1]["id"] == out["collect"]["dataset"]
    for version in chain:
        records = open_dataset_version(workspace, catalog, version["id"]).records()
        assert {(r.source, r.license) for r in records} <= {
            (s["source"], s["license"]) for s in down["sources"]
        }
        assert {r.license for r in records} <= set(down["licenses"])
        assert sum(s["records"] for s in version["sources"]) == version["records"] == len(records)
    assert down["licenses"] == ["CC-BY-SA-3.0"] == licenses_in(found)
    assert licenses_in(lineage_for_content(catalog, publications[0].content_item_id)) == down["licenses"]

    # Up from the same item: its publication and that publication's feedback, counted per kind.
    up = found["up"]
    assert [p["id"] for p in up["content"]["publications"]] == [publications[0].id]
    assert up["totals"]["feedback"] == {"dislike": 1, "like": 1} and up["events"] is None

    # Up from the collect-stage data: every derived version, both runs, both models, all feedback.
    data = lineage(catalog, out["collect"]["dataset"], direction="up", events=True)
    assert data["down"] is None
    assert [d["stage"] for d in data["up"]["dataset_versions"]] == ["collect", "clean", "annotate"]
    trained = {r["id"] for r in data["up"]["runs"] if r["role"] == "train"}
    assert out["train"]["run"] in trained and len(trained) == 2  # the demo run and the fine-tune
    by_id = {m["id"]: m for m in data["up"]["model_versions"]}
    assert set(by_id) == {result.champion, result.challenger}
    assert by_id[result.challenger]["parent_id"] == result.champion
    assert by_id[result.champion]["content_items"] == 20 == by_id[result.champion]["publications"]
    totals = data["up"]["totals"]
    assert totals == {
        "content_items": 20,
        "publications": 20,
        "feedback_events": 4,
        "feedback": {"dislike": 1, "like": 3},
    }
    assert [e["kind"] for e in data["up"]["events"]] == ["like", "like", "like", "dislike"]

    # A model alias, mid-chain: down through its parent and the feedback data; up to nothing yet.
    challenger = lineage(catalog, "digits@challenger")
    assert challenger["subject"] == {"kind": "model_version", "id": result.challenger}
    model = challenger["down"]["model_version"]
    assert model["parent"]["id"] == result.champion
    roles = {d["role"]: d["chain"][0]["id"] for d in model["run"]["datasets"]}
    assert roles == {"train": out["annotate"]["dataset"], "feedback": result.feedback_dataset}
    assert "CC-BY-SA-3.0" in challenger["down"]["licenses"]
    assert challenger["up"]["totals"]["content_items"] == 0

    # The champion's name alone means its champion; up lists the fine-tune and its run.
    champion = lineage(catalog, "digits", direction="up")
    assert champion["subject"]["id"] == result.champion
    assert [m["id"] for m in champion["up"]["model_versions"]] == [result.champion, result.challenger]
    assert [r["role"] for r in champion["up"]["runs"]] == ["fine-tune"]
    assert json.loads(json.dumps(found)) == found  # plain JSON, nothing lost


def _small_catalog(catalog: Catalog) -> None:
    with catalog.session() as s:
        s.add(
            DatasetVersion(id="abcd1111", name="d", stage="collect", path="/x", record_count=3, manifest={})
        )
        s.add(
            DatasetVersion(
                id="abcd2222",
                name="d",
                stage="clean",
                parent_id="abcd1111",
                path="/x",
                record_count=2,
                manifest={},
            )
        )
        s.flush()
        s.add(DatasetSource(dataset_version_id="abcd1111", source="web", license="CC0-1.0", record_count=2))
        s.add(DatasetSource(dataset_version_id="abcd1111", source="scan", license="unknown", record_count=1))
        s.add(DatasetSource(dataset_version_id="abcd2222", source="web", license="CC0-1.0", record_count=2))
        s.add(Run(id="run1", model_name="d", family="vae", status="completed", config={}, path="/r"))
        s.flush()
        s.add(RunDataset(run_id="run1", dataset_version_id="abcd2222", role="train"))
        s.add(ModelVersion(id="d-v1", name="d", version=1, family="vae", run_id="run1", path="/m"))
        s.flush()
        s.add(ModelAlias(name="d", alias="champion", model_version_id="d-v1"))


def test_ids_resolve_by_kind_and_ambiguity_lists_the_candidates(catalog: Catalog) -> None:
    _small_catalog(catalog)
    assert lineage(catalog, "abcd1111")["subject"] == {"kind": "dataset_version", "id": "abcd1111"}
    assert lineage(catalog, "abcd2")["subject"]["id"] == "abcd2222"
    assert lineage(catalog, "d@champion")["subject"] == {"kind": "model_version", "id": "d-v1"}
    assert lineage(catalog, "d")["subject"]["id"] == "d-v1"
    with pytest.raises(GenloopError, match="matches more than one id") as ambiguous:
        lineage(catalog, "abcd")
    assert "dataset_version abcd1111" in str(ambiguous.value) and "abcd2222" in str(ambiguous.value)
    with pytest.raises(NotFoundError, match="4\\+ characters"):
        lineage(catalog, "ab")
    with pytest.raises(NotFoundError, match="no content item, model version or dataset version"):
        lineage(catalog, "ffffffff")
    with pytest.raises(NotFoundError, match="aliases of 'd': champion"):
        lineage(catalog, "d@nope")
    with pytest.raises(GenloopError, match="unknown direction"):
        lineage(catalog, "d", direction="sideways")


def test_dataset_down_lists_every_source_and_license(catalog: Catalog) -> None:
    _small_catalog(catalog)
    down = lineage(catalog, "abcd2222", direction="down")["down"]
    assert [v["id"] for v in down["dataset_chain"]] == ["abcd2222", "abcd1111"]
    assert down["dataset_chain"][1]["sources"] == [
        {"source": "scan", "license": "unknown", "records": 1},
        {"source": "web", "license": "CC0-1.0", "records": 2},
    ]
    assert down["licenses"] == ["CC0-1.0", "unknown"]
    assert down["content"] is None and down["model_version"] is None


def test_a_corrupt_parent_cycle_ends_instead_of_looping(catalog: Catalog) -> None:
    _small_catalog(catalog)
    with catalog.session() as s:
        s.get(DatasetVersion, "abcd1111").parent_id = "abcd2222"  # type: ignore[union-attr]
    found = lineage(catalog, "abcd1111")
    assert [v["id"] for v in found["down"]["dataset_chain"]] == ["abcd1111", "abcd2222"]
    assert [d["id"] for d in found["up"]["dataset_versions"]] == ["abcd1111", "abcd2222"]


def _publish(catalog: Catalog, start: int, stop: int) -> None:
    """Content items start..stop-1 of model d-v1, each published once with one feedback event."""
    with catalog.session() as s:
        for i in range(start, stop):
            s.add(
                ContentItem(
                    id=f"c{i:05d}",
                    model_version_id="d-v1",
                    modality="image",
                    path="p",
                    condition={},
                    seed=i,
                    params={},
                    labels={},
                )
            )
        s.flush()
        for i in range(start, stop):
            s.add(Publication(id=f"p{i:05d}", content_item_id=f"c{i:05d}", channel="gallery"))
        s.flush()
        for i in range(start, stop):
            kind = "like" if i % 3 else "dislike"
            s.add(FeedbackEvent(publication_id=f"p{i:05d}", kind=kind, viewer_id="v"))


def _statements(catalog: Catalog, ref: str) -> tuple[int, dict[str, Any]]:
    seen: list[str] = []

    def count(*_args: Any) -> None:
        seen.append("x")

    sa.event.listen(catalog.engine, "before_cursor_execute", count)
    try:
        found = lineage(catalog, ref, direction="up")
    finally:
        sa.event.remove(catalog.engine, "before_cursor_execute", count)
    return len(seen), found


def test_up_counts_are_aggregated_not_one_query_per_item(catalog: Catalog) -> None:
    _small_catalog(catalog)
    _publish(catalog, 0, 5)
    few, _ = _statements(catalog, "abcd1111")
    _publish(catalog, 5, 300)
    many, found = _statements(catalog, "abcd1111")
    assert many == few  # the same queries for 5 items and for 300
    assert found["up"]["totals"] == {
        "content_items": 300,
        "publications": 300,
        "feedback_events": 300,
        "feedback": {"dislike": 100, "like": 200},
    }

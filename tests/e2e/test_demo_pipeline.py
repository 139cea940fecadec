"""End to end, tiny and real: the demo pipeline, feedback, improve, lineage — on both catalogs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import func, select
from typer.testing import CliRunner

from genloop.catalog import open_catalog
from genloop.catalog.lineage import licenses_in, lineage_for_content
from genloop.catalog.models import (
    ContentItem,
    DatasetVersion,
    Evaluation,
    FeedbackEvent,
    ModelAlias,
    ModelVersion,
    Publication,
    RunDataset,
)
from genloop.cli.main import app
from genloop.feedback.events import record_feedback
from genloop.generate.labels.implicit import parse_reserved_code, read_implicit_label
from genloop.improve.recipe import improve
from genloop.pipeline.runner import run_pipeline
from genloop.workspace import Workspace


def _count(catalog, model) -> int:  # type: ignore[no-untyped-def]
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_whole_loop_then_improve_then_lineage(workspace: Workspace) -> None:
    catalog = open_catalog(workspace.database_url)
    runs = run_pipeline(workspace, catalog)
    assert [r.stage for r in runs] == [
        "collect",
        "clean",
        "annotate",
        "train",
        "evaluate",
        "generate",
        "publish",
    ]
    assert all(r.status == "ran" for r in runs)
    out = {r.stage: r.outputs for r in runs}

    # Data: three dataset versions chained by parent, with Parquet shards and manifests.
    annotated = out["annotate"]["dataset"]
    with catalog.session() as s:
        version = s.get(DatasetVersion, annotated)
        assert version is not None and version.stage == "annotate"
        clean = s.get(DatasetVersion, version.parent_id)
        assert clean is not None and clean.stage == "clean" and clean.parent_id == out["collect"]["dataset"]
        manifest = json.loads((Path(version.path) / "manifest.json").read_text())
        assert manifest["classes"] == [str(d) for d in range(10)]
        assert manifest["records"] == 400
        shard = pq.read_table(Path(version.path) / manifest["shards"][0]["file"])
        assert {"id", "label", "source", "license", "payload"} <= set(shard.column_names)
        assert set(shard.column("license").to_pylist()) == {"CC-BY-SA-3.0"}

    # Train: checkpoints, a fixed-noise grid per epoch, a registered champion.
    model_id = out["train"]["model_version"]
    run_dir = workspace.path("runs", out["train"]["run"])
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == ["epoch-001.png", "epoch-002.png"]
    with catalog.session() as s:
        model = s.get(ModelVersion, model_id)
        assert model is not None
        model_dir = workspace.artifact(model.path)
        assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
        alias = s.get(ModelAlias, ("digits", "champion"))
        assert alias is not None and alias.model_version_id == model_id
        evaluation = s.scalars(select(Evaluation).where(Evaluation.model_version_id == model_id)).one()
        assert {"heldout_elbo", "conditional_accuracy", "conditional_accuracy_per_class"} <= set(
            evaluation.metrics
        )
        assert set(evaluation.metrics["conditional_accuracy_per_class"]) == {str(d) for d in range(10)}

    # Generate + publish: 2 per class, each file carrying its AIGC label.
    content = out["generate"]["content"]
    assert len(content) == 20 and _count(catalog, Publication) == 20
    with catalog.session() as s:
        item = s.get(ContentItem, content[0])
        assert item is not None
        label = read_implicit_label(workspace.artifact(item.path))
        assert not Path(item.path).is_absolute()  # the workspace can be moved
    assert label is not None and label["ProduceID"] == content[0]
    signature = parse_reserved_code(label["ReservedCode1"])  # signed: model, key id, content hash
    assert signature is not None and signature.model == model_id

    # The published copy carries the propagator fields (GB 45438), and its signature still holds.
    with catalog.session() as s:
        publication = s.scalars(select(Publication).where(Publication.content_item_id == content[0])).one()
        assert publication.path is not None
        published = read_implicit_label(workspace.artifact(publication.path))
    assert published is not None and published["PropagateID"] == publication.id
    assert published["ContentPropagator"] and published["ReservedCode1"] == label["ReservedCode1"]

    # Re-running changes nothing.
    again = run_pipeline(workspace, catalog)
    assert {r.status for r in again} == {"cached"}

    # Feedback → improve → a challenger with lineage to its parent and the feedback.
    with catalog.session() as s:
        publications = s.scalars(select(Publication).order_by(Publication.id)).all()
    for publication in publications[:6]:
        record_feedback(catalog, publication_id=publication.id, kind="like", viewer_id="tester")
    record_feedback(catalog, publication_id=publications[6].id, kind="dislike", viewer_id="tester")
    # `genloop improve` prints the promotion gates beside its comparison: one that any sane
    # challenger passes and one that nothing can pass (accuracy above 100 %).
    with (workspace.root / "genloop.toml").open("a", encoding="utf-8") as config:
        config.write(
            '\n[[gates]]\nmetric = "conditional_accuracy"\nrule = "at_least"\nvalue = 0.0\n'
            '\n[[gates]]\nmetric = "conditional_accuracy"\nrule = "at_least"\nvalue = 1.01\n'
        )
    cli = CliRunner().invoke(app, ["improve", "-w", str(workspace.root)])
    assert cli.exit_code == 0, cli.output
    assert "promotion gates" in cli.output and "1 of 2 gates fail" in cli.output
    assert cli.output.count("pass") >= 1 and "FAIL" in cli.output
    with catalog.session() as s:
        challenger_id = s.get(ModelAlias, ("digits", "challenger")).model_version_id  # type: ignore[union-attr]
    assert challenger_id in cli.output
    result = improve(workspace, catalog, workspace.config)
    assert result.champion == model_id and result.liked == 6 and result.feedback_events == 7
    with catalog.session() as s:
        challenger = s.get(ModelVersion, result.challenger)
        assert challenger is not None
        assert challenger.parent_id == model_id and challenger.feedback_count == 7
        roles = {
            r.role: r.dataset_version_id
            for r in s.scalars(select(RunDataset).where(RunDataset.run_id == challenger.run_id))
        }
    assert roles == {"train": annotated, "feedback": result.feedback_dataset}
    assert "conditional_accuracy" in result.challenger_metrics

    # Lineage of the champion's content reaches the source and its license.
    found = lineage_for_content(catalog, content[0])
    assert found["model_version"]["id"] == model_id
    assert licenses_in(found) == ["CC-BY-SA-3.0"]

    # A simulated audience that likes sevens — as recognised by its own eyes (the workspace's
    # classifier), from the pixels of the published files — reacts through the HTTP API.
    before = _count(catalog, FeedbackEvent)
    simulated = CliRunner().invoke(
        app,
        [
            "simulate",
            "-p",
            "likes-class:7",
            "--viewers",
            "6",
            "--attention",
            "100",
            "-w",
            str(workspace.root),
        ],
    )
    assert simulated.exit_code == 0, simulated.output
    assert "likes-class:7:" in simulated.output and "looks by 6 viewers" in simulated.output
    with catalog.session() as s:
        rows = s.execute(
            select(ContentItem.condition, FeedbackEvent.kind)
            .join(Publication, Publication.id == FeedbackEvent.publication_id)
            .join(ContentItem, ContentItem.id == Publication.content_item_id)
            .where(FeedbackEvent.id > before)
        ).all()
    likes = [condition["label"] for condition, kind in rows if kind == "like"]
    assert len(rows) == _count(catalog, FeedbackEvent) - before > 0
    assert likes.count("7") > len(likes) / 5  # one class of ten gets far more than its share

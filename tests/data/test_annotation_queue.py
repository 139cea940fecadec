"""The human annotation queue on both catalog backends: enqueue, next, submit, agreement, apply."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import Base
from genloop.catalog.session import MIGRATIONS_DIR
from genloop.config import AnnotateConfig
from genloop.data.annotate import annotate
from genloop.data.annotate.apply import apply_annotations, majority_label
from genloop.data.annotate.auto import Suggestion
from genloop.data.annotate.queue import agreement, enqueue, next_task, queue_counts, submit, tasks
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.record import Record
from genloop.errors import DataError, NotFoundError
from genloop.workspace import Workspace

TEXTS = ["我要退款", "refund please", "password reset", "快递太慢了", "great, thanks"]


def tickets(workspace: Workspace) -> tuple[Catalog, DatasetHandle]:
    """A clean version: one labelled ticket and four unlabelled ones."""
    catalog = open_catalog(workspace.database_url)
    records = [
        Record.create(
            t.encode(),
            modality="text",
            label="praise" if "great" in t else None,
            source="t",
            license="CC0-1.0",
        )
        for t in TEXTS
    ]
    return catalog, write_dataset_version(workspace, catalog, records, name="tickets", stage="clean")


def unlabelled_ids(dataset: DatasetHandle) -> list[str]:
    return [r.id for r in dataset.iter_records() if r.label is None]


def test_migration_0002_matches_the_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(sa.inspect(connection).get_table_names())
    assert {"annotation_tasks", "annotations"} <= tables
    assert [d for d in diffs if "annotation" in str(d)] == []


def test_migration_0002_downgrades_and_upgrades_again(catalog: Catalog) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with catalog.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")
        assert "annotation_tasks" not in sa.inspect(connection).get_table_names()
        command.upgrade(cfg, "head")
        assert {"annotation_tasks", "annotations"} <= set(sa.inspect(connection).get_table_names())


def test_queue_round_trip_with_two_annotators(workspace: Workspace) -> None:
    catalog, dataset = tickets(workspace)
    ids = unlabelled_ids(dataset)
    created = enqueue(
        catalog,
        dataset.id,
        [(ids[0], Suggestion("refund", 0.6, "knn"))] + [(rid, None) for rid in ids[1:]],
        annotators=2,
    )
    assert created == 4
    assert enqueue(catalog, dataset.id, [(rid, None) for rid in ids]) == 0  # idempotent

    first = next_task(catalog, "ana")
    assert first is not None and (first.record_id, first.suggested_label) == (ids[0], "refund")
    submit(catalog, first.id, "ana", "refund")
    ana_next, bo_next = next_task(catalog, "ana"), next_task(catalog, "bo")
    assert ana_next is not None and ana_next.id != first.id
    assert bo_next is not None and bo_next.id == first.id  # bo has not seen it yet
    done = submit(catalog, first.id, "bo", "refund")
    assert done.status == "done" and done.labels == {"ana": "refund", "bo": "refund"}

    answers = {"ana": ["refund", "account", "complaint"], "bo": ["refund", "account", "refund"]}
    for name, labels in answers.items():
        for label in labels:
            task = next_task(catalog, name)
            assert task is not None
            submit(catalog, task.id, name, label)
    assert next_task(catalog, "ana") is None
    assert submit(catalog, first.id, "ana", "complaint").labels["ana"] == "complaint"  # relabel replaces
    submit(catalog, first.id, "ana", "refund")

    [counts] = queue_counts(catalog)
    assert (counts.open, counts.done, counts.annotations) == (0, 4, 8)
    report = agreement(catalog, dataset_version_id=dataset.id)
    assert (report.items, report.annotators, report.raters_per_item) == (4, ["ana", "bo"], 2)
    # ana: refund refund account complaint; bo: refund refund account refund.
    # p_o = 3/4; p_e = (2/4·3/4) + (1/4·1/4) = 7/16; κ = (12/16 − 7/16)/(9/16) = 5/9.
    assert report.pairs[0].kappa == pytest.approx(5 / 9)
    assert report.fleiss is not None and report.fleiss_items == 4


def test_bad_queue_input_is_refused(workspace: Workspace) -> None:
    catalog, dataset = tickets(workspace)
    with pytest.raises(NotFoundError, match="not in the catalog"):
        enqueue(catalog, "nope", [("x", None)])
    enqueue(catalog, dataset.id, [(unlabelled_ids(dataset)[0], None)])
    task = next_task(catalog, "ana")
    assert task is not None
    with pytest.raises(DataError, match="label must be"):
        submit(catalog, task.id, "ana", "  ")
    with pytest.raises(DataError, match="annotator name"):
        submit(catalog, task.id, "", "refund")
    with pytest.raises(NotFoundError, match="no annotation task 999"):
        submit(catalog, 999, "ana", "refund")


def test_apply_merges_majority_labels_into_a_child_version(workspace: Workspace) -> None:
    catalog, dataset = tickets(workspace)
    with pytest.raises(DataError, match="no finished annotation task"):
        apply_annotations(workspace, catalog, dataset.id)
    annotated = annotate(workspace, catalog, dataset, AnnotateConfig()).dataset  # keeps only "praise"
    ids = unlabelled_ids(dataset)
    enqueue(catalog, dataset.id, [(rid, None) for rid in ids], annotators=3)
    votes = [["refund"] * 3, ["refund", "refund", "account"], ["account", "complaint", "refund"]]
    for task, labels in zip(tasks(catalog, dataset_version_id=dataset.id), votes, strict=False):
        for name, label in zip(["ana", "bo", "cy"], labels, strict=True):
            submit(catalog, task.id, name, label)

    result = apply_annotations(workspace, catalog, dataset.id)
    assert (result.base_id, result.applied, result.open_tasks) == (annotated.id, 2, 1)
    assert len(result.ties) == 1
    manifest = result.dataset.manifest
    assert (manifest["stage"], manifest["parent"]) == ("annotate", dataset.id)
    assert manifest["labels"] == {"praise": 1, "refund": 2}
    assert manifest["classes"] == ["praise", "refund"]
    second = next(r for r in result.dataset.iter_records() if r.id == ids[1])
    assert second.meta["human_label"] == {
        "label": "refund",
        "votes": "2/3",
        "annotators": ["ana", "bo", "cy"],
    }
    assert result.unlabelled_left_out == 0


def test_majority_label() -> None:
    assert majority_label(["a", "b", "a"]) == ("a", 2)
    assert majority_label(["a", "b"]) is None
    assert majority_label([]) is None

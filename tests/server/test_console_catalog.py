"""Console pages whose subject is a catalog query, on SQLite and PostgreSQL: counts, publishing,
alias moves, annotation, analytics with Wilson intervals (helpers shared with test_console.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from genloop.catalog.models import AliasEvent, DatasetVersion, FeedbackEvent, Job, ModelAlias, Publication
from genloop.feedback.analytics import wilson_interval
from server.test_console import CSRF_INPUT, POEM, add_review_item, log_in, page, status_of

if TYPE_CHECKING:
    from tests.server.conftest import SeededCatalog


def test_wilson_interval_golden_numbers() -> None:
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(2, 3)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.2077, 0.9385)
    low, high = wilson_interval(1, 1)  # type: ignore[misc]
    assert (round(low, 4), high) == (0.2065, 1.0)
    low, high = wilson_interval(500, 1000)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.4691, 0.5309)


def test_dashboard_counts(client: TestClient, seeded: SeededCatalog) -> None:
    add_review_item(seeded)
    with seeded.catalog.session() as session:
        session.add(FeedbackEvent(publication_id=seeded.publication_ids[0], kind="like", viewer_id="v" * 20))
        session.add(
            Job(id="job-1", kind="generate", status="running", params={}, progress=0.5, created_by="ana")
        )
    log_in(client, seeded, "viewer")
    text = page(client, "/console")
    assert 'data-stat="datasets">2<' in text
    assert 'data-stat="runs">2<' in text
    assert 'data-stat="models">2<' in text
    assert 'data-stat="publications">6<' in text
    assert 'data-stat="feedback">1<' in text
    assert '<tr data-status="review">' in text and "1 awaiting review" in text
    assert "/console/jobs/job-1" in text and "50%" in text


def test_promote_then_roll_back(client: TestClient, seeded: SeededCatalog) -> None:
    log_in(client, seeded, "editor", name="李四")
    token = CSRF_INPUT.search(page(client, "/console/models"))
    assert token
    for version in ("digits-v1", "digits-v2"):
        response = client.post(
            f"/console/models/{version}/promote", data={"csrf_token": token.group(1)}, follow_redirects=False
        )
        assert response.status_code == 303, response.text[:500]
    response = client.post(
        "/console/models/digits/rollback", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303
    with seeded.catalog.session() as session:
        alias = session.get(ModelAlias, ("digits", "champion"))
        assert alias is not None and alias.model_version_id == "digits-v1"
        actors = session.scalars(select(AliasEvent.actor)).all()
    assert set(actors) == {"李四"}
    assert "Alias history" in page(client, "/console/models")


def test_editor_publishes_an_approved_item(client: TestClient, seeded: SeededCatalog) -> None:
    content_id = add_review_item(seeded)
    log_in(client, seeded, "editor")
    token = CSRF_INPUT.search(page(client, "/console/review"))
    assert token
    client.post(f"/console/review/{content_id}/approve", data={"csrf_token": token.group(1)})
    assert f'data-publish="{content_id}"' in page(client, "/console/review")
    response = client.post(
        f"/console/review/{content_id}/publish", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert status_of(seeded, content_id) == "published"
    with seeded.catalog.session() as session:
        count = session.scalar(select(func.count()).where(Publication.content_item_id == content_id))
    assert count == 1
    gallery = page(client, "/gallery?modality=text")
    assert POEM in gallery and 'data-edit-publication="' in gallery
    assert "AI生成" in gallery


def test_annotation_page_labels_the_next_task(client: TestClient, seeded: SeededCatalog) -> None:
    from genloop.data.annotate.auto import Suggestion
    from genloop.data.annotate.queue import enqueue, tasks

    with seeded.catalog.session() as session:
        version = session.get(DatasetVersion, "ds-annot-0002")
        assert version is not None
        version.manifest = {"classes": ["正面", "负面"]}
    enqueue(seeded.catalog, "ds-annot-0002", [("rec-1", Suggestion("正面", 0.8, "knn")), ("rec-2", None)])
    log_in(client, seeded, "reviewer", name="标注员")
    text = page(client, "/console/annotate")
    assert 'data-label="正面"' in text and 'data-label="负面"' in text
    assert "cannot be shown" in text  # the seeded version has no files; the task is still labelled
    token = CSRF_INPUT.search(text)
    assert token
    task_id = re.search(r'data-task="(\d+)"', text)
    assert task_id
    response = client.post(
        f"/console/annotate/{task_id.group(1)}",
        data={"csrf_token": token.group(1), "label": "负面"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    labelled = {task.record_id: task.labels for task in tasks(seeded.catalog)}
    assert labelled["rec-1"] == {"标注员": "负面"}
    assert 'data-task="' in page(client, "/console/annotate")  # rec-2 comes next


def test_analytics_shows_wilson_intervals_per_group(client: TestClient, seeded: SeededCatalog) -> None:
    v1 = [pub for pub in seeded.publication_ids if seeded.model_of[pub] == "digits-v1"]
    with seeded.catalog.session() as session:
        session.get(Publication, v1[0]).arm = "B"  # type: ignore[union-attr]
        for index, kind in enumerate(["like", "like", "dislike"]):
            session.add(FeedbackEvent(publication_id=v1[index], kind=kind, viewer_id=f"viewer-{index:016d}"))
        session.add(FeedbackEvent(publication_id=v1[0], kind="rating", value=4.0, viewer_id="r" * 20))
        session.add(FeedbackEvent(publication_id=v1[1], kind="rating", value=5.0, viewer_id="r" * 20))
    log_in(client, seeded, "viewer")
    text = page(client, "/console/analytics")
    model_table = text[
        text.index('data-analytics="model_version"') : text.index('data-analytics="condition"')
    ]
    assert '<tr data-group="digits-v1">' in model_table
    assert "66.7%" in model_table and "21–94%" in model_table  # Wilson 95 % of 2 / 3
    assert "4.50" in model_table
    arm_table = text[text.index('data-analytics="arm"') :]
    assert '<tr data-group="B">' in arm_table and '<tr data-group="(none)">' in arm_table
    assert '<tr data-group="gallery">' in text
    assert "<polyline" in text  # like-rate over time

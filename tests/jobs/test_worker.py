"""Workers running real jobs: a tiny real model generates, progress is stored, cancellation stops it,
errors are recorded, spawned worker processes share one queue, and `genloop worker --once` works."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from genloop.catalog import Catalog, open_catalog
from genloop.catalog.models import ContentItem
from genloop.cli import worker_cmd
from genloop.errors import GenloopError
from genloop.jobs import queue
from genloop.jobs.worker import Worker, run_once, spawn_workers, stop_workers
from genloop.workspace import Workspace
from support.mnist import MakeDigits
from support.tiny_generators import register_tiny


@pytest.fixture
def vae(sqlite_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Catalog, str]:
    catalog = open_catalog(sqlite_workspace.database_url)
    return sqlite_workspace, catalog, register_tiny(sqlite_workspace, catalog, "vae", tmp_path)


def content_count(catalog: Catalog) -> int:
    with catalog.session() as session:
        return session.scalar(select(func.count()).select_from(ContentItem)) or 0


def test_a_generate_job_makes_the_items_and_stores_the_result(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    params = {"model": version, "labels": ["a", "c"], "per_class": 3, "seed": 7}
    job_id = queue.enqueue(catalog, "generate", params, created_by="test")
    job = run_once(workspace)
    assert job is not None and job.id == job_id
    assert job.status == "done", job.error
    assert job.progress == 1.0 and job.message == "done"
    result = job.result or {}
    assert result["model_version"] == version
    assert (result["created"], result["existing"]) == (6, 0)
    with catalog.session() as session:
        stored = session.scalars(select(ContentItem).where(ContentItem.id.in_(result["content_ids"]))).all()
    assert len(stored) == 6
    assert sorted(item.condition["label"] for item in stored) == ["a", "a", "a", "c", "c", "c"]
    assert all(workspace.artifact(item.path).is_file() for item in stored)
    assert run_once(workspace) is None  # the queue is empty

    again = queue.enqueue(catalog, "generate", params, created_by="test")
    rerun = run_once(workspace)
    assert rerun is not None and rerun.id == again
    assert (rerun.result or {})["existing"] == 6 and (rerun.result or {})["created"] == 0
    assert content_count(catalog) == 6


def test_a_running_job_stops_when_cancelled(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    job_id = queue.enqueue(catalog, "generate", {"model": version, "per_class": 2}, created_by=None)
    worker = Worker(workspace)
    claimed = queue.claim(catalog, worker.name)
    assert claimed is not None and claimed.id == job_id
    assert queue.cancel(catalog, job_id).status == "cancelling"
    finished = worker.run_claimed(claimed)
    assert finished.status == "cancelled"
    assert content_count(catalog) == 0  # it stopped before the first item


def test_a_failing_job_records_why_and_the_worker_goes_on(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    bad = queue.enqueue(catalog, "generate", {"model": "no-such-model"}, created_by=None)
    wrong_class = queue.enqueue(catalog, "generate", {"model": version, "labels": ["z"]}, created_by=None)
    good = queue.enqueue(catalog, "generate", {"model": version, "per_class": 1}, created_by=None)
    worker = Worker(workspace)
    results = {job.id: job for job in (worker.run_once(), worker.run_once(), worker.run_once()) if job}
    assert results[bad].status == "failed"
    assert "no model version or model named 'no-such-model'" in (results[bad].error or "")
    assert "no class 'z'" in (results[wrong_class].error or "")
    assert "known classes: a, b, c" in (results[wrong_class].error or "")
    assert results[good].status == "done"


def test_unknown_kinds_are_refused_by_the_worker(sqlite_workspace: Workspace) -> None:
    with pytest.raises(GenloopError, match="unknown job kind 'gpu-mining'"):
        Worker(sqlite_workspace, kinds=["gpu-mining"])


@pytest.mark.slow  # each spawned process imports torch (the handlers' models): ~5 s on a busy machine
def test_spawned_worker_processes_share_the_queue(sqlite_workspace: Workspace) -> None:
    catalog = open_catalog(sqlite_workspace.database_url)
    ids = [queue.enqueue(catalog, "deliver-webhooks", {}, created_by=None) for _ in range(6)]
    processes = spawn_workers(sqlite_workspace, 2, poll_seconds=0.1)
    try:
        deadline = time.monotonic() + 90
        while not all(queue.get(catalog, job_id).finished for job_id in ids):
            assert time.monotonic() < deadline, "the spawned workers did not finish the jobs"
            assert all(p.is_alive() for p in processes), "a worker process died"
            time.sleep(0.1)
    finally:
        stop_workers(processes, timeout=20)
    jobs = [queue.get(catalog, job_id) for job_id in ids]
    assert {job.status for job in jobs} == {"done"}, [job.error for job in jobs]
    assert all(job.result == {"delivered": [], "retrying": [], "dead": []} for job in jobs)
    assert all(p.exitcode is not None for p in processes)


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genloop (only the verb under test)."""

    worker_cmd.register(app)
    return app


def test_worker_once_from_the_command_line(vae: tuple[Workspace, Catalog, str]) -> None:
    workspace, catalog, version = vae
    runner = CliRunner()
    empty = runner.invoke(cli(), ["worker", "--once", "-w", str(workspace.root)])
    assert empty.exit_code == 0, empty.output
    assert "no queued job" in empty.output

    job_id = queue.enqueue(catalog, "generate", {"model": version, "per_class": 1}, created_by="cli")
    ran = runner.invoke(cli(), ["worker", "--once", "--kinds", "generate", "-w", str(workspace.root)])
    assert ran.exit_code == 0, ran.output
    assert f"job {job_id} (generate): done" in ran.output
    assert queue.get(catalog, job_id).status == "done"

    failing = queue.enqueue(catalog, "generate", {"model": "ghost"}, created_by="cli")
    failed = runner.invoke(cli(), ["worker", "--once", "-w", str(workspace.root)])
    assert failed.exit_code == 1
    assert f"job {failing} (generate): failed" in failed.output


SMALL_RUN = """
[project]
name = "digits"

[train]
epochs = 1
batch_size = 32
latent_dim = 4
hidden_channels = 4

[evaluate]
samples_per_class = 3
samples = 60
classifier_epochs = 1
"""


@pytest.mark.slow  # trains a tiny VAE (one small epoch) and evaluates it
def test_train_then_evaluate_jobs(sqlite_workspace: Workspace, make_digits: MakeDigits) -> None:
    sqlite_workspace.config_path.write_text(SMALL_RUN, encoding="utf-8")
    catalog = open_catalog(sqlite_workspace.database_url)
    dataset = make_digits(sqlite_workspace, per_class=10)
    train = queue.enqueue(catalog, "train", {"dataset": dataset.id}, created_by="t")
    trained = run_once(sqlite_workspace)
    assert trained is not None and trained.id == train
    assert trained.status == "done", trained.error
    version = (trained.result or {})["model_version"]
    assert version == "digits-v1"

    evaluate = queue.enqueue(catalog, "evaluate", {"model": "digits"}, created_by="t")
    evaluated = run_once(sqlite_workspace)
    assert evaluated is not None and evaluated.id == evaluate
    assert evaluated.status == "done", evaluated.error
    result = evaluated.result or {}
    assert (result["model_version"], result["dataset_version"]) == (version, dataset.id)  # its training data
    assert "conditional_accuracy" in result["metrics"]

    missing = queue.enqueue(catalog, "train", {}, created_by="t")
    failed = run_once(sqlite_workspace)
    assert failed is not None and failed.id == missing and failed.status == "failed"
    assert "needs `dataset`" in (failed.error or "")

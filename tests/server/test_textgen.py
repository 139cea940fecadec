"""`POST /api/v1/generate/text`: real worker processes, a real tiny GPT, a real catalog.

What a client would notice: the text is the model's own continuation for that seed (the
same as generating in-process), also when other requests are decoded in the same batch;
it is labelled AI-generated, editors only, bad input is a clear 4xx, the work happens in
other processes, and those processes end with the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from genloop.catalog import Catalog, open_catalog
from genloop.errors import GenloopError
from genloop.models.versions import load_model_version
from genloop.server.app import create_app
from genloop.server.auth import create_api_key
from genloop.server.textgen_pool import (
    DEFAULT_NICE,
    MAX_BATCH_ENV,
    NICE_ENV,
    WORKERS_ENV,
    TextGenPool,
    TextJob,
    generate_one,
    max_batch_from_env,
    nice_from_env,
)
from genloop.workspace import Workspace
from support.tiny_generators import register_tiny

URL = "/api/v1/generate/text"


def _setup(workspace: Workspace, tmp_path: Path) -> tuple[Catalog, str, dict[str, str]]:
    catalog = open_catalog(workspace.database_url)
    version = register_tiny(workspace, catalog, "gpt", tmp_path)
    editor = create_api_key(catalog, name="copywriter", role="editor")
    return catalog, version, {"Authorization": f"Bearer {editor.secret}"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # the pool joins its workers, so an ended one is no zombie
    except ProcessLookupError:
        return False
    return True


def test_generates_the_models_own_text_in_worker_processes(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORKERS_ENV, "2")
    catalog, version, editor = _setup(workspace, tmp_path)
    body = {"model": "tiny-gpt", "prompt": "hello", "max_new_tokens": 40, "temperature": 0.9, "seed": 7}
    app = create_app(workspace)
    with TestClient(app) as client:
        first = client.post(URL, json=body, headers=editor)
        assert first.status_code == 200, first.text
        again = client.post(URL, json=body, headers=editor).json()
        other_seed = client.post(URL, json={**body, "seed": 8}, headers=editor).json()
        pool: TextGenPool = app.state.textgen_pool
        pids = pool.pids
        priorities = [os.getpriority(os.PRIO_PROCESS, pid) for pid in pids]
    answer = first.json()
    model = load_model_version(workspace, catalog, version).model
    expected = model.generate_text(["hello"], seed=7, max_tokens=40, temperature=0.9)[0]  # type: ignore[operator]
    assert answer["text"] == expected and answer["model_version"] == version == "tiny-gpt-v1"
    assert 1 <= answer["tokens"] <= 40 and answer["seed"] == 7 and answer["ms"] > 0
    assert answer["ai_generated"] is True
    label = answer["label"]
    assert label["Label"] == "1" and label["ContentProducer"] == "genloop"
    assert len(label["ProduceID"]) == 32 and label["ReservedCode1"] == version
    assert (again["text"], again["label"]["ProduceID"]) == (answer["text"], label["ProduceID"])
    assert other_seed["label"]["ProduceID"] != label["ProduceID"]
    # two persistent workers, not this process; both gone once the app has shut down
    assert len(pids) == 2 and os.getpid() not in pids
    # decoding runs below the server's CPU priority, so the API stays responsive under load
    assert priorities == [min(19, os.getpriority(os.PRIO_PROCESS, 0) + DEFAULT_NICE)] * 2
    assert not any(_alive(pid) for pid in pids), "text-generation workers outlived the app"


def test_editors_only_and_clear_errors(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    catalog, version, editor = _setup(sqlite_workspace, tmp_path)
    viewer = create_api_key(catalog, name="dashboard", role="viewer")
    app = create_app(sqlite_workspace)
    with TestClient(app) as client:
        body = {"model": version, "prompt": "hi", "seed": 1}
        assert client.post(URL, json=body).status_code == 401
        forbidden = client.post(URL, json=body, headers={"Authorization": f"Bearer {viewer.secret}"})
        assert forbidden.status_code == 403 and "editor" in forbidden.json()["detail"]
        too_long = client.post(URL, json={**body, "max_new_tokens": 201}, headers=editor)
        assert too_long.status_code == 422 and "200" in too_long.text
        assert client.post(URL, json={**body, "temperature": -1}, headers=editor).status_code == 422
        assert client.post(URL, json={**body, "extra": 1}, headers=editor).status_code == 422
        missing = client.post(URL, json={**body, "model": "no-such-model"}, headers=editor)
        assert missing.status_code == 404
        assert "no-such-model" in missing.json()["detail"] and missing.json()["hint"]
        # nothing above needed a worker: the pool starts on the first valid request only
        assert getattr(app.state, "textgen_pool", None) is None
        register_tiny(sqlite_workspace, catalog, "vae", tmp_path)
        not_text = client.post(URL, json={**body, "model": "tiny-vae"}, headers=editor)
        assert not_text.status_code == 400 and "'vae'" in not_text.json()["detail"]
        assert getattr(app.state, "textgen_pool", None) is None


def test_a_killed_worker_is_replaced(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WORKERS_ENV, "1")
    _, version, editor = _setup(sqlite_workspace, tmp_path)
    app = create_app(sqlite_workspace)
    body = {"model": version, "prompt": "the", "max_new_tokens": 5, "temperature": 0, "seed": 3}
    with TestClient(app) as client:
        before = client.post(URL, json=body, headers=editor)
        assert before.status_code == 200, before.text
        pool: TextGenPool = app.state.textgen_pool
        (victim,) = pool.pids
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pool.pids == [victim] and time.monotonic() < deadline:
            time.sleep(0.05)
        after = client.post(URL, json=body, headers=editor)
        assert after.status_code == 200, after.text
        assert after.json()["text"] == before.json()["text"]  # greedy: the same text from the new worker
        assert pool.restarts == 1 and pool.pids != [victim]


def test_concurrent_requests_get_the_text_they_get_alone(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One worker, so two concurrent requests share its batch; each keeps its seed's text."""
    monkeypatch.setenv(WORKERS_ENV, "1")
    catalog, version, editor = _setup(sqlite_workspace, tmp_path)
    bodies = [
        {"model": version, "prompt": "hello", "max_new_tokens": 40, "temperature": 0.9, "seed": 11},
        {"model": version, "prompt": "the quick", "max_new_tokens": 30, "temperature": 1.2, "top_k": 5,
         "top_p": 0.8, "seed": 12},
    ]  # fmt: skip
    app = create_app(sqlite_workspace)
    with TestClient(app) as client:

        def post(body: dict[str, Any]) -> str:
            response = client.post(URL, json=body, headers=editor)
            assert response.status_code == 200, response.text
            return str(response.json()["text"])

        alone = [post(body) for body in bodies]
        with ThreadPoolExecutor(len(bodies)) as threads:
            together = list(threads.map(post, bodies))
    model = load_model_version(sqlite_workspace, catalog, version).model
    in_process = [
        model.generate_text(["hello"], seed=11, max_tokens=40, temperature=0.9)[0],  # type: ignore[operator]
        model.generate_text(["the quick"], seed=12, max_tokens=30, temperature=1.2, top_k=5, top_p=0.8)[0],  # type: ignore[operator]
    ]
    assert together == alone == in_process


def test_a_batch_of_mixed_requests_matches_one_by_one(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """Different prompt lengths, parameters and lengths past the context window, decoded as one
    batch in one worker: each text and token count is that of generating the request alone."""
    catalog, version, _ = _setup(sqlite_workspace, tmp_path)
    jobs = [
        TextJob(version, "hello", 40, 0.9, None, 1),  # 41 + 6 tokens > block_size 32: the window slides
        TextJob(version, "", 12, 0.0, None, 2),  # greedy
        TextJob(version, "the quick brown", 20, 1.5, 3, 3),
        TextJob(version, "你好", 25, 0.7, None, 4, top_p=0.5),
        TextJob(version, "hello", 40, 0.9, None, 5),  # same prompt and parameters, another seed
    ]
    pool = TextGenPool(sqlite_workspace.root, catalog.url, size=1, max_batch=8).start()
    try:

        async def all_at_once() -> list[Any]:
            return await asyncio.gather(*(pool.generate(job) for job in jobs))

        results = asyncio.run(all_at_once())
    finally:
        pool.close()
    model = load_model_version(sqlite_workspace, catalog, version).model
    assert [(r.text, r.tokens) for r in results] == [generate_one(model, job) for job in jobs]
    # the jobs were queued while the worker started, so it decoded them together
    assert max(r.batch_peak for r in results) > 1


def test_bad_payloads_get_a_clear_4xx(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    _, version, editor = _setup(sqlite_workspace, tmp_path)
    app = create_app(sqlite_workspace)
    body = {"model": version, "prompt": "hi", "seed": 1}
    with TestClient(app) as client:
        for bad, field in [
            ({**body, "top_p": 0}, "top_p"),
            ({**body, "top_p": 1.5}, "top_p"),
            ({**body, "max_new_tokens": "many"}, "max_new_tokens"),
            ({**body, "seed": -1}, "seed"),
            ({"prompt": "no model"}, "model"),
        ]:
            response = client.post(URL, json=bad, headers=editor)
            assert response.status_code == 422, (bad, response.text)
            assert [field] == [e["loc"][-1] for e in response.json()["detail"]], response.text
        not_json = client.post(
            URL, content=b"{not json", headers={**editor, "Content-Type": "application/json"}
        )
        assert not_json.status_code == 422 and "json" in not_json.text.lower()
        assert getattr(app.state, "textgen_pool", None) is None  # rejected before any worker started


def test_pool_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_BATCH_ENV, "0")
    with pytest.raises(GenloopError, match=MAX_BATCH_ENV) as error:
        max_batch_from_env()
    assert error.value.hint is not None and "1 to 256" in error.value.hint
    monkeypatch.setenv(MAX_BATCH_ENV, "4")
    assert max_batch_from_env() == 4
    for bad in ("20", "-1", "low"):
        monkeypatch.setenv(NICE_ENV, bad)
        with pytest.raises(GenloopError, match=NICE_ENV) as error:
            nice_from_env()
        assert error.value.hint is not None and "0 to 19" in error.value.hint
    monkeypatch.setenv(NICE_ENV, "0")  # 0: the workers at the server's own priority
    assert nice_from_env() == 0
    monkeypatch.delenv(NICE_ENV)
    assert nice_from_env() == DEFAULT_NICE == 10

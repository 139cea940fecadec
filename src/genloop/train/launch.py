"""Re-launching a training run in N processes with `accelerate launch` or torchrun.

    with launching("torchrun", 2):          # what `genloop train --launcher torchrun
        train_model(...)                    #                      --num-processes 2` does

Inside the block, a recipe that supports data parallelism (`relaunch_requested()` at the
top of its `train`) writes its arguments to `.genloop/launch/ID.json` and starts

    python -m torch.distributed.run --nproc-per-node N -m genloop.train.launch ID.json
    python -m accelerate.commands.launch --multi_gpu --num_processes N -m genloop.train.launch ID.json

(`--multi_gpu` is accelerate's switch for its torchrun path; without GPUs it runs gloo on
CPU; for one process accelerate starts the worker directly.) Each process joins the
process group and calls the same recipe; rank 0 writes the result to ID.result.json,
which the launching process returns as the TrainResult. The run id does not depend on
the process count, so a run killed under 2 processes can resume under 1, and vice versa.
Starting costs a few seconds (each process imports torch): worth it for long runs only.

When a process fails, the error names the launcher's exit code and, unless stderr is a
terminal (where the output is already on screen), ends with the last lines the processes
and the launcher wrote to stderr: a worker's Python traceback (torchrun's summary repeats
it, via `record`), or for a native crash Python's fault handler's stack of every thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genloop.catalog import Catalog, open_catalog
from genloop.config import TrainConfig
from genloop.data.datasets import DatasetHandle, open_dataset_version
from genloop.errors import GenloopError
from genloop.progress import say
from genloop.storage import atomic_write_json
from genloop.train.device import THREADS_ENV
from genloop.train.distributed import (
    WORLD_SIZE_ENV,
    init_distributed,
    is_main_process,
    teardown_distributed,
)
from genloop.train.runs import TrainResult
from genloop.workspace import Workspace

LAUNCHERS = ("accelerate", "torchrun")
STDERR_TAIL_LINES = 60
"""Lines of the launch's stderr a failure's message ends with (torchrun's summary is ~25)."""


@dataclass(frozen=True)
class LaunchPlan:
    launcher: str
    num_processes: int


_PLAN: ContextVar[LaunchPlan | None] = ContextVar("genloop_launch_plan", default=None)


@contextmanager
def launching(launcher: str, num_processes: int) -> Iterator[LaunchPlan]:
    """Train the runs started inside this block in `num_processes` processes via `launcher`."""
    if launcher not in LAUNCHERS:
        raise GenloopError(f"unknown launcher {launcher!r}", hint=f"launchers: {', '.join(LAUNCHERS)}")
    if num_processes < 1:
        raise GenloopError(f"--num-processes must be ≥ 1 (got {num_processes})")
    token = _PLAN.set(LaunchPlan(launcher, num_processes))
    try:
        yield _PLAN.get()  # type: ignore[misc]
    finally:
        _PLAN.reset(token)


def relaunch_requested() -> LaunchPlan | None:
    """The plan to re-launch under, or None: no plan, or this already is a launched process."""
    plan = _PLAN.get()
    if plan is None or WORLD_SIZE_ENV in os.environ:
        return None
    return plan


def launch_training(
    plan: LaunchPlan,
    workspace: Workspace,
    catalog: Catalog,
    dataset: DatasetHandle,
    cfg: TrainConfig,
    *,
    model_name: str,
    init_from: str | None,
    extra_datasets: Sequence[tuple[DatasetHandle, str, int]],
    alias: str | None,
    feedback_count: int,
) -> TrainResult:
    """Run the recipe of `cfg.family` in `plan.num_processes` processes; rank 0's TrainResult."""
    spec_path = workspace.path("launch", f"{uuid.uuid4().hex[:12]}.json")
    result_path = spec_path.with_suffix(".result.json")
    atomic_write_json(
        spec_path,
        {
            "workspace": str(workspace.root),
            "catalog_url": catalog.url,
            "dataset": dataset.id,
            "extra_datasets": [[h.id, role, repeat] for h, role, repeat in extra_datasets],
            "train": cfg.model_dump(mode="json"),
            "model_name": model_name,
            "init_from": init_from,
            "alias": alias,
            "feedback_count": feedback_count,
            "result": str(result_path),
        },
    )
    command = launch_command(plan, spec_path)
    say(f"launching {plan.num_processes} training processes with {plan.launcher}")
    try:
        code, stderr_tail = _run_launcher(command, _worker_env(plan.num_processes))
        if code != 0 or not result_path.is_file():
            output = f"; the end of its stderr:\n{stderr_tail}" if stderr_tail else "; the output is above"
            raise GenloopError(
                f"training under {plan.launcher} with {plan.num_processes} processes failed "
                f"(exit code {code}){output}",
                hint="run the same command again to resume from the last checkpoint, "
                "or train in one process (without --launcher) to see the error alone",
            )
        return TrainResult(**json.loads(result_path.read_text(encoding="utf-8")))
    finally:
        for path in (spec_path, result_path):
            with suppress(FileNotFoundError):
                path.unlink()


def _run_launcher(command: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the launcher; its exit code and the last `STDERR_TAIL_LINES` lines of its stderr.

    On a terminal the processes write to it themselves (live progress bars) and the tail is
    "". Elsewhere (CI, a log file) each line passes through to our stderr as it comes, and
    the last ones are kept for the error message.
    """
    if sys.stderr is None or sys.stderr.isatty():
        return subprocess.run(command, env=env, check=False).returncode, ""
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as process:
        assert process.stderr is not None  # stderr=PIPE
        for raw in process.stderr:
            line = raw.decode("utf-8", errors="replace")
            sys.stderr.write(line)
            tail.append(line)
        code = process.wait()
    sys.stderr.flush()
    return code, "".join(tail).rstrip("\n")


def launch_command(plan: LaunchPlan, spec_path: Path) -> list[str]:
    """The launcher's command line; a free port, so parallel launches on one machine don't clash."""
    port, n = str(_free_port()), str(plan.num_processes)
    worker = ["-m", "genloop.train.launch", str(spec_path)]
    if plan.launcher == "torchrun":
        return [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", n),
            *("--master-addr", "127.0.0.1", "--master-port", port, *worker),
        ]
    several = ["--multi_gpu"] if plan.num_processes > 1 else []  # accelerate refuses it for one
    return [
        *(sys.executable, "-m", "accelerate.commands.launch", *several, "--num_processes", n),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_ip", "127.0.0.1", "--main_process_port", port, *worker),
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _worker_env(num_processes: int) -> dict[str, str]:
    """Split the CPUs between the processes unless the user chose a thread count."""
    env = dict(os.environ)
    if not (env.get(THREADS_ENV) or env.get("OMP_NUM_THREADS")):
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cpus // num_processes))
    return env


# -- inside each launched process ------------------------------------------------------------------


def run_worker(spec_path: Path) -> None:
    """Join the process group, train with the spec's arguments; rank 0 writes the result."""
    from genloop.train.recipes import recipe_module

    spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
    init_distributed()
    completed = False
    try:
        workspace = Workspace(Path(spec["workspace"]))
        catalog = open_catalog(spec["catalog_url"])
        extra = [
            (open_dataset_version(workspace, catalog, dataset_id), role, repeat)
            for dataset_id, role, repeat in spec["extra_datasets"]
        ]
        cfg = TrainConfig.model_validate(spec["train"])
        result: TrainResult = recipe_module(cfg.family).train(
            workspace,
            catalog,
            open_dataset_version(workspace, catalog, spec["dataset"]),
            cfg,
            model_name=spec["model_name"],
            init_from=spec["init_from"],
            extra_datasets=extra,
            alias=spec["alias"],
            feedback_count=spec["feedback_count"],
        )
        if is_main_process():
            atomic_write_json(Path(spec["result"]), asdict(result))
        completed = True
    finally:
        teardown_distributed(completed=completed)


def _worker_main(spec_path: Path) -> int:
    """A launched process from start to exit code: 0, or 1 with the traceback on stderr.

    torchrun's `record` enables the fault handler (a native crash prints every thread's
    Python stack) and puts an exception's traceback into torchrun's failure summary.
    """
    from torch.distributed.elastic.multiprocessing.errors import record

    try:
        record(run_worker)(spec_path)
    except BaseException:  # reported here; the process then ends with 1
        traceback.print_exc()
        return 1
    return 0


def _exit_at_once(code: int) -> None:
    """End the process without interpreter shutdown: flush what Python buffers, then `os._exit`.

    gloo's worker threads outlive `destroy_process_group` once DDP has used the group, and
    one may still be dropping the last collective's tensors, which takes the GIL. A thread
    that takes the GIL while the interpreter shuts down is ended by `pthread_exit`, whose
    unwinding through a noexcept destructor aborts the process: "terminate called without
    an active exception", SIGABRT, after a run that succeeded (seen under CPU load in 2 of
    24 torchrun launches of a collective-then-exit script). Nothing is left to shut down:
    the result is written, the process group left, the catalog committed; atexit handlers
    are skipped, so logging is shut down and stdout/stderr flushed here.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_at_once(_worker_main(Path(sys.argv[1])))

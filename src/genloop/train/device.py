"""Where training runs: the device, the CPU threads, and mixed precision."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

THREADS_ENV = "GENLOOP_NUM_THREADS"


def use_available_cpus() -> None:
    """Intra-op threads: GENLOOP_NUM_THREADS, else OMP_NUM_THREADS, else one per usable CPU.

    Set GENLOOP_NUM_THREADS=1 when other busy processes share the CPUs: with every core
    taken, threads of small operations wait on each other and a step can take 50× longer.
    """
    explicit = os.environ.get(THREADS_ENV) or os.environ.get("OMP_NUM_THREADS") or ""
    if explicit.isdigit() and int(explicit) > 0:
        threads = int(explicit)
    else:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, threads))


def training_device() -> torch.device:
    """CUDA when there is a GPU (GENLOOP_DEVICE overrides: `cpu`, `cuda:1`), else CPU."""
    explicit = os.environ.get("GENLOOP_DEVICE")
    if explicit:
        return torch.device(explicit)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast for the forward pass when `precision == "bf16"`; a no-op for fp32."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield

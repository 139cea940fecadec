"""Where training runs: the device, the CPU threads, and mixed precision."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch

from genloop.progress import say

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


@functools.cache
def fast_bf16(device_type: str) -> bool:
    """Whether bf16 matrix products run natively on this device type (else: emulated, slow).

    CPUs without AVX-512 (or Arm's bf16 extension) emulate bf16: on a 2-core AVX2 EPYC, a
    (768 × 128) · (128 × 2,000) product took 12 ms in fp32 and 310 ms in bf16 (26×), and a
    cpu-preset GPT step 1.2 s vs 6.7 s. oneDNN says whether it has bf16 kernels for this CPU;
    a CUDA device, whether its GPU computes bf16.
    """
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device_type != "cpu":
        return True  # mps, xpu…: autocast decides
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else False


def effective_precision(precision: str, device: torch.device) -> str:
    """`precision`, except bf16 becomes fp32 where bf16 would be emulated (`fast_bf16`)."""
    if precision == "bf16" and not fast_bf16(device.type):
        _note_fp32(device.type)
        return "fp32"
    return precision


@functools.cache
def _note_fp32(device_type: str) -> None:
    say(
        f"[dim]precision bf16 asked, but this {device_type} has no native bf16 (it would be emulated, "
        "many times slower): training in fp32[/dim]"
    )


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast for the forward pass when `precision == "bf16"` and the device computes bf16
    natively (`effective_precision`); a no-op for fp32."""
    if effective_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield

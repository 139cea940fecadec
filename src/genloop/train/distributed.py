"""Data-parallel training across processes: rank, world size, sharding, barriers, reductions.

A recipe that adopts it (see `recipes/vae.py`) runs the same loop in every process:

    every rank     builds the same model (DDP broadcasts rank 0's weights), walks the same
                   shuffled batches, and trains on its own slice of each: shard_batch(rows)
    DDP            averages the gradients over ranks, so with the shard loss scaled by
                   shard_loss_scale the update equals one process training on the whole batch
    rank 0 alone   writes checkpoints, metrics, samples, the catalog rows and the model
                   version (`TrainingSession` checks `is_main_process`); the others wait at
                   `barrier()`

Rank and world size come from the environment torchrun / `accelerate launch` set (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT); without them everything here is a no-op for one
process, so a recipe needs no separate single-process path. CPU runs use the gloo backend.
Starting the processes is `genloop.train.launch`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

RANK_ENV, WORLD_SIZE_ENV = "RANK", "WORLD_SIZE"
TIMEOUT = timedelta(minutes=30)
"""How long a rank waits at a collective for the others (rank 0 writing a checkpoint, evaluating)."""


def world_size() -> int:
    """Processes training together: the process group's size, else WORLD_SIZE, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get(WORLD_SIZE_ENV, "1"))


def rank() -> int:
    """This process's rank (0 … world_size − 1): the process group's, else RANK, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get(RANK_ENV, "0"))


def is_main_process() -> bool:
    """True on rank 0, the only rank that writes files and catalog rows."""
    return rank() == 0


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device: torch.device | None = None) -> bool:
    """Join the process group the launcher's environment describes; False when there is none.

    gloo on CPU, nccl on CUDA. Safe to call twice, and a no-op for a single process.
    """
    if int(os.environ.get(WORLD_SIZE_ENV, "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    on_cuda = device is not None and device.type == "cuda"
    dist.init_process_group("nccl" if on_cuda else "gloo", timeout=TIMEOUT)
    return True


def teardown_distributed(*, completed: bool = True) -> None:
    """Leave the process group: every rank, at the end.

    After a `completed` run every rank first meets at a barrier, so none closes its gloo
    sockets (or leaves the TCPStore) while another still has a collective in flight. After
    a failure there is no barrier: the other ranks may be gone, and the launcher ends them.

    Leaving does not stop gloo's worker threads once DDP has used the group: the C++
    Reducer keeps its own reference, so they outlive `destroy_process_group` (measured:
    without DDP the process is back to 1 thread, with DDP 4 remain). Such a thread may
    still hold the last collective's tensors and take the GIL to free them; during
    interpreter shutdown that aborts the process, which is why a launched worker ends
    with `os._exit` (see `genloop.train.launch`).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if completed and dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here; a no-op for one process."""
    if is_distributed():
        dist.barrier()


def shard_batch(rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch: sizes differ by at most one row.

    `torch.tensor_split` puts the extra rows on the first ranks: 33 rows on 2 ranks → 17 + 16.
    A batch smaller than the world leaves the last ranks an empty slice.
    """
    return torch.tensor_split(rows, world_size())[rank()]


def shard_loss_scale(shard_rows: int, batch_rows: int) -> float:
    """Factor on a shard's *mean* loss so DDP's gradient average is the whole batch's mean.

    DDP computes (1/W) Σ_r ∇L_r; the batch mean is Σ_r (n_r / B) ∇L_r, so scale L_r by
    W · n_r / B. It is 1 when the shards are equal, and 1 for one process.
    """
    return world_size() * shard_rows / batch_rows


def rank_generator(
    seed: int, step: int, device: torch.device | None = None, *, of_rank: int | None = None
) -> torch.Generator:
    """A generator for one rank's random draws at one step, seeded by (seed, step, rank).

    Ranks draw independent noise, and a resumed step draws the same noise again, without
    any generator state in the checkpoint. `of_rank` defaults to this process's rank.
    """
    generator = torch.Generator(device or "cpu")
    which = rank() if of_rank is None else of_rank
    generator.manual_seed(hash((seed, step, which)) & (2**63 - 1))  # int tuples hash the same everywhere
    return generator


def all_reduce_mean(value: float, weight: float = 1.0) -> float:
    """The `weight`-weighted mean of `value` over ranks (e.g. a shard's mean loss, weighted by
    its rows, gives the batch mean); `value` itself for one process."""
    if not is_distributed():
        return value
    # NCCL reduces only CUDA tensors, gloo CPU ones: put the pair where the backend wants it
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    both = torch.tensor([value * weight, weight], dtype=torch.float64, device=device)
    dist.all_reduce(both)  # a 2-element tensor costs one round trip
    return float(both[0] / both[1]) if float(both[1]) else 0.0


def broadcast_from_main(value: T) -> T:
    """Rank 0's `value` on every rank (any picklable object); `value` for one process."""
    if not is_distributed():
        return value
    box = [value if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def all_reduce_row_means(means: torch.Tensor, rows: float) -> torch.Tensor:
    """Whole-batch means (K,) from each rank's shard means (K,), weighted by the shard's `rows`.

    One round trip for K metrics, on the tensors' own device (NCCL carries CUDA tensors only),
    and no host sync; `means` itself for one process. A zero-weight rank adds nothing.
    """
    if not is_distributed():
        return means
    weighted = torch.cat([means.detach().double() * rows, means.new_full((1,), rows, dtype=torch.float64)])
    dist.all_reduce(weighted)  # Σ_r n_r·m_r and Σ_r n_r
    return (weighted[:-1] / weighted[-1]).to(means.dtype)

"""How many loader processes read the images, and how far ahead: the same rule for training and inference."""

from __future__ import annotations

import os

import torch

CPU_WORKERS: int = 2
"""Loader processes on a CPU run: there the model step, not the loader, is the limit, and every
further worker takes a core from it."""

CUDA_PREFETCH: int = 4
"""Batches each worker keeps ready on CUDA (DataLoader's default is 2): a slow batch, such as the
first read of a shard, then does not leave the GPU waiting."""


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loader_workers(requested: int | None, device: torch.device, local_world: int, cores: int) -> tuple[int, int | None]:
    """(worker processes, batches prefetched per worker) of a loader; ``requested`` (--workers) wins.

    On CUDA every process on the machine gets its share of the cores less one, which it keeps to
    drive the GPU, and at least CPU_WORKERS: decoding, not the GPU, is what a small machine runs
    out of. A CPU run keeps CPU_WORKERS.
    """
    workers = requested
    if workers is None:
        workers = max(CPU_WORKERS, cores // local_world - 1) if device.type == "cuda" else CPU_WORKERS
    if workers == 0:
        return 0, None
    return workers, CUDA_PREFETCH if device.type == "cuda" else None

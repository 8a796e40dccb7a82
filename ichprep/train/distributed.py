"""What a run needs to know about torchrun: rank, world size, device, and a gather for validation.

The same `ichprep train` command runs alone or under `torchrun --nproc_per_node=N`; torchrun
sets RANK/WORLD_SIZE/LOCAL_RANK, and their presence switches DistributedDataParallel on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ichprep.models.device import pick_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the run; ``local_world`` is how many processes share this machine."""

    rank: int
    world: int
    device: torch.device
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    chosen = pick_device(device)
    if world == 1:
        return Dist(0, 1, chosen)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), chosen, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def gather_rows(d: Dist, positions: np.ndarray, values: np.ndarray, total: int) -> np.ndarray | None:
    """Reassemble per-rank (positions, values) into one array of `total` rows on rank 0.

    Each rank validated a disjoint, unpadded slice, so no duplicate ever enters the metric.
    Returns None on the other ranks.
    """
    if not d.enabled:
        out = np.empty((total,) + values.shape[1:], dtype=values.dtype)
        out[positions] = values
        return out
    parts: list = [None] * d.world
    dist.all_gather_object(parts, (positions, values))
    if not d.main:
        return None
    out = np.empty((total,) + values.shape[1:], dtype=values.dtype)
    for pos, val in parts:
        out[pos] = val
    return out


def sync_buffers(d: Dist, module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics) before validating.

    DDP broadcasts buffers only at the start of each training forward, so after the last step
    every rank holds its own statistics; rank 0's are the ones saved, so all ranks validate with them.
    """
    if d.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside DistributedDataParallel's and torch.compile's wrappers.

    Its state_dict keys carry neither ``module.`` nor ``_orig_mod.``, so a checkpoint or model.pt
    loads the same whether the run that wrote it (or reads it) ran under torchrun or compiled.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model

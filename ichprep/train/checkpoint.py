"""Checkpoint files written atomically and read without running code, and the seeds that make resume exact.

Why atomic: a run killed while writing last.pt must leave the previous last.pt intact, so every
file is written to a temporary name in the same folder and renamed over the target.

Why no generator state: every epoch reseeds Python, numpy and torch (every device) from
``epoch_seed(seed, epoch, rank)`` before it draws anything, so the state a generator had at the
end of an epoch is never read again. Saving it bought nothing and tied a checkpoint to the machine
that wrote it: one CUDA state per visible GPU, which could not be restored where fewer GPUs were
visible, and numpy's state, which needed an unpickler that runs code. A checkpoint holds only
tensors and plain values, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ichprep.models.saved import as_plain, load_plain, save_plain

CHECKPOINT_FORMAT = "ichprep-checkpoint/3"
"""The marker of an image run's last.pt and best.pt; /2 lacked the run's identity, /1 (unmarked) pickled generator states."""
SERIES_CHECKPOINT = "ichprep-series-checkpoint/2"
"""The marker of train-series' last.pt and best.pt."""


@dataclass
class Checkpoint:
    """What last.pt and best.pt hold: the states to continue from, the run so far, and the options it was made with."""

    format: str
    model: dict
    optimizer: dict
    epoch: int
    best: float
    history: list[dict]
    config: dict
    scaler: dict = field(default_factory=dict)
    world: int = 1
    run: str = ""
    """The run's identity, kept across resumes (its model records name it)."""
    extra: dict = field(default_factory=dict)
    """The callbacks' own state (a bag of epochs' weights, for one)."""


def save_checkpoint(ckpt: Checkpoint, path: Path) -> None:
    """The checkpoint at PATH, written atomically (``save_plain``)."""
    save_plain(as_plain(ckpt), path)


def load_checkpoint(path: Path, marker: str = CHECKPOINT_FORMAT) -> Checkpoint:
    """A checkpoint of the run kind ``marker`` names, refused in one line when it is anything else."""
    values = load_plain(path, f"--resume: {path} is not a checkpoint this ichprep can continue; start a new run", marker)
    return Checkpoint(**values)


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """Continue the fp16 loss scale where the saved run left it, when it had one.

    A disabled scaler (bf16 or fp32) saves ``{}``, which torch refuses to load into an enabled one:
    a run saved on an A100 (bf16) and resumed on a T4 (fp16) starts from a fresh scale instead,
    which the scaler settles within a few steps. A disabled scaler ignores a saved scale.
    """
    if state:
        scaler.load_state_dict(state)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch in one process: a pure function, so a resumed epoch draws what it drew before.

    The rank is part of it because every DDP process augments its own share of the batch: seeded
    from (seed, epoch) alone, the i-th image of every rank would get the same transform.
    """
    return int(np.random.SeedSequence([seed & (2**64 - 1), epoch, rank]).generate_state(1, np.uint64)[0])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

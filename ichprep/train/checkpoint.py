"""Atomic checkpoint files and the RNG state a resumed run needs.

Why atomic: a run killed while writing last.pt must leave the previous last.pt intact, so every
file is written to a temporary name in the same folder and renamed over the target.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ichprep import atomic


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save under a temporary name, renamed onto PATH when complete."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when present) CUDA generator states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load(path: Path) -> dict[str, Any]:
    """A checkpoint written by save_atomic (it holds numpy RNG state, hence weights_only=False)."""
    return torch.load(path, map_location="cpu", weights_only=False)

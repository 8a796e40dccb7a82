"""Disk budgets: will the output fit, and stop before the disk fills.

The estimate comes from converting a sample for real (same sink, same settings) and measuring
the blocks it occupies, because compressed image sizes depend on the data far more than on
any formula.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ichprep.convert.run.worker import Job
    from ichprep.convert.sources import Input

UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9, "T": 10**12, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MARGIN = 256 * 2**20
"""Free space below which a running conversion stops (manifest and finished outputs kept)."""
SAMPLE = 32
"""Slices converted to estimate the output size."""
MANIFEST_BYTES = 600
"""Manifest bytes per input (Parquet, about fifty columns), measured on the real headers."""


def parse_size(text: str) -> int:
    """``20GB``, ``500MiB``, ``1.5T`` or a plain byte count to bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if not match or unit not in UNITS:
        raise ValueError(f"{text!r} is not a size such as 20GB, 500MiB or 1.5T")
    return int(float(match.group(1)) * UNITS[unit])


def human(size: float) -> str:
    """Bytes as a short human-readable size."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} TB"


def disk_usage(path: Path) -> int:
    """Bytes the files under ``path`` occupy on disk (allocated blocks, not apparent size)."""
    total = 0
    for item in [path] if path.is_file() else path.rglob("*"):
        if item.is_file():
            total += item.stat().st_blocks * 512
    return total


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


RESERVE = 16 * 2**20
"""Space held back during a run (at most an eighth of the free space) so the manifest can still be written when the disk fills."""


class Reserve:
    """A placeholder file that holds ``size`` bytes until ``release`` gives them back.

    If the disk fills during a run, releasing it leaves room to write the manifest of
    everything finished, so the run stops resumable rather than with a half-written table.
    """

    def __init__(self, path: Path, size: int = RESERVE) -> None:
        self.path = path
        try:
            size = min(size, free_bytes(path.parent) // 8)
            with open(path, "wb") as fh:
                if size > 0:
                    os.posix_fallocate(fh.fileno(), 0, size)
        except OSError:
            path.unlink(missing_ok=True)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Estimate:
    """Projected output size of a run against the space it may use."""

    images: int
    per_image: float
    free: int
    limit: int | None

    @property
    def total(self) -> int:
        return int(self.images * (self.per_image + MANIFEST_BYTES))

    @property
    def available(self) -> int:
        return min(self.free - MARGIN, self.limit) if self.limit is not None else self.free - MARGIN

    @property
    def fits(self) -> bool:
        return self.total <= self.available

    def describe(self) -> str:
        limit = f", budget {human(self.limit)}" if self.limit is not None else ""
        return (f"estimated output {human(self.total)} for {self.images} images ({human(self.per_image)} each); "
                f"free space {human(self.free)}{limit}")


def estimate(job: Job, todo: Sequence[Input], scratch: Path, where: Path, limit: int | None) -> Estimate:
    """Convert a spread-out sample of ``todo`` into ``scratch`` with the run's own sink and measure it.

    ``scratch`` is removed again; ``where`` is the folder whose free space the output will use.
    """
    from ichprep.convert.run.worker import Task, run

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    picks = tuple(todo[int(i)] for i in np.linspace(0, len(todo) - 1, min(SAMPLE, len(todo)))) if todo else ()
    try:
        done = run(replace(job, sink=replace(job.sink, out=str(scratch))), Task(picks))
        made = sum(r["status"] == "ok" for r in done.rows)
        per_image = disk_usage(scratch) / made if made else 0.0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Estimate(images=len(todo), per_image=per_image, free=free_bytes(where), limit=limit)

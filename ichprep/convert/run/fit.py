"""Fit a run to its disk before it starts: the JPEG quality ``--max-disk`` affords, or a one-line refusal with advice.

The budget is ``--max-disk`` (within the free space), or the free space of OUT's file system when
none is given. A lossy run given ``--max-disk`` and no ``--quality`` gets the highest quality of
the measured ladder (``ladder``) whose estimate plus its margin fits, never below
``--min-quality``; every other run is measured at its own settings. A run that cannot fit is
refused before anything is converted, naming what would fit: a quality, a smaller ``--size``,
fewer images with ``--ids``. A small run on a roomy disk is not sampled at all: even incompressible
images would fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ichprep.convert.run import budget, ladder
from ichprep.errors import BudgetError
from ichprep.settings import DEFAULT_QUALITY, MIN_SIZE, Settings

if TYPE_CHECKING:
    from ichprep.convert.run.worker import Job
    from ichprep.convert.sources import Input

WORST_RATIO = 1.5
"""Bytes per pixel and channel no PNG, JPEG or HDF5 chunk of ours exceeds (incompressible content at quality 100)."""
WORST_OVERHEAD = 8192
"""Bytes per image of file-system blocks and headers beyond the pixels, at most."""


@dataclass(frozen=True)
class Fit:
    """What a run may do within its budget: the quality to write, the estimate, and the ladder when one was measured."""

    quality: int
    estimate: budget.Estimate | None = None
    ladder: ladder.Ladder | None = None
    picked: bool = False
    """Whether the budget chose the quality (else it was given, resumed or the default)."""
    available: int | None = None

    def announce(self) -> str:
        """The line printed before a run whose quality the budget picked."""
        assert self.ladder is not None
        rung = self.ladder.rung(self.quality)
        return f"--max-disk {budget.human(self.estimate.limit)} picks {self.ladder.line(rung)}"


def fit(job: Job, todo: Sequence[Input], settings: Settings, scratch: Path, where: Path, limit: int | None,
        min_quality: int = ladder.MIN_QUALITY, dry_run: bool = False) -> Fit:
    """The quality and estimate of a run of ``todo`` into the folder ``where``; ``BudgetError`` when it cannot fit.

    ``settings.quality`` None means "pick" (with ``limit``) or the default. A dry run measures
    everything (the ladder too, for a lossless format as the JPEG alternative) and refuses nothing.
    """
    free = budget.free_bytes(where)
    available = min(free - budget.MARGIN, limit) if limit is not None else free - budget.MARGIN
    pick = settings.lossy and settings.quality is None and limit is not None
    quality = settings.quality or DEFAULT_QUALITY
    if not todo:
        return Fit(quality, budget.Estimate(0, 0.0, free, limit), available=available)
    if not dry_run and limit is None and _surely_fits(len(todo), settings.size, len(job.channels), available):
        return Fit(quality, available=available)
    measured = None
    if settings.lossy or dry_run:
        measured = ladder.measure(job, todo, scratch, ladder.LADDER + (() if pick or not settings.lossy else (quality,)))
    if settings.lossy:
        chosen = measured.best(available, min_quality) if pick else measured.rung(quality)
        if pick and chosen is None and not dry_run:
            raise BudgetError(_refusal_of_floor(measured, available, limit, settings, min_quality))
        chosen = chosen or measured.rung(min(r.quality for r in measured.rungs if r.quality >= min_quality))
        estimate = budget.Estimate(images=len(todo), per_image=chosen.per_image, free=free, limit=limit)
        if not pick and not estimate.fits and not dry_run:
            raise BudgetError(f"at --quality {quality}, {estimate.describe()}: it would not fit; "
                              f"{advice(measured, estimate.total / max(len(todo), 1), available, settings, 'quality')}", estimate)
        return Fit(chosen.quality, estimate, measured, pick and measured.needs(chosen) <= available, available)
    estimate = budget.estimate(job, todo, scratch, where, limit)
    if not estimate.fits and not dry_run:
        alternative = ladder.measure(job, todo, scratch)
        raise BudgetError(f"{estimate.describe()}: it would not fit; "
                          f"{advice(alternative, estimate.total / max(len(todo), 1), available, settings, 'format')}", estimate)
    return Fit(quality, estimate, measured, False, available)


def _surely_fits(images: int, size: int, channels: int, available: int) -> bool:
    """Whether even incompressible images would fit, so no sample need be measured."""
    return images * (size * size * max(channels, 1) * WORST_RATIO + WORST_OVERHEAD + budget.MANIFEST_BYTES) <= available


def _refusal_of_floor(measured: ladder.Ladder, available: int, limit: int, settings: Settings, floor: int) -> str:
    lowest = measured.rung(min(r.quality for r in measured.rungs if r.quality >= floor))
    return (f"--max-disk {budget.human(limit)} ({budget.human(available)} usable) is below JPEG quality {floor} (--min-quality): "
            f"it needs an estimated {budget.human(measured.needs(lowest))} for {measured.images:,} images "
            f"({budget.human(lowest.per_image)} each, with the {ladder.MARGIN:.0%} margin); "
            f"{advice(measured, measured.needs(lowest) / max(measured.images, 1), available, settings, 'min-quality')}")


def advice(measured: ladder.Ladder, per_image: float, available: int, settings: Settings, change: str) -> str:
    """What would fit ``available``: a measured quality, a smaller ``--size``, or fewer images (``--ids``).

    ``per_image`` is what one image of the refused run needs; ``change`` is how a quality is
    asked for: ``quality`` (``--quality N``), ``min-quality`` (``--min-quality N``) or ``format``
    (a JPEG format for a lossless run, whose quality ``--max-disk`` then picks).
    """
    tips = []
    best = measured.best(available)
    if best is not None:
        what = {"quality": f"--quality {best.quality}", "min-quality": f"--min-quality {best.quality}",
                "format": "--format jpg" if settings.format != "hdf5" else "--codec jpeg"}[change]
        cost = f"{budget.human(measured.total(best))}, PSNR {measured.psnr_text(best)}"
        tips.append(f"{what} with --max-disk, which picks quality {best.quality} ({cost})" if change == "format" else f"{what} ({cost})")
    ratio = max(available, 0) / max(per_image * measured.images, 1)
    smaller = int(settings.size * math.sqrt(ratio)) // 16 * 16
    if MIN_SIZE <= smaller < settings.size:
        tips.append(f"--size {smaller} (about {(smaller / settings.size) ** 2:.0%} of the bytes per image)")
    fewer = int(available / per_image) if per_image > 0 else 0
    if 0 < fewer < measured.images:
        tips.append(f"--ids with at most {fewer:,} of the {measured.images:,} images (e.g. clean-meta's train.parquet)")
    return "try " + ", or ".join(tips) if tips else "free some space or choose another output folder"

"""The JPEG quality a disk budget affords, measured on a seeded sample of the run's own inputs.

JPEG sizes depend on the slices far more than on any formula, so the sample is read and rendered
once by the worker's own code, then stored at every quality of a ladder through the run's own
kind of sink (JPEG files, or JPEG bytes in a shard) and measured in allocated blocks. Each stored
sample is read back through the store training uses and compared, channel by channel, with the
lossless render: the PSNR says what each quality costs in every window.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ichprep.convert.run.budget import MANIFEST_BYTES, disk_usage, human

if TYPE_CHECKING:
    from ichprep.convert.run.worker import Job
    from ichprep.convert.sources import Input
    from ichprep.store import SinkSpec

LADDER: tuple[int, ...] = (95, 93, 90, 88, 85, 83, 80, 78, 75, 73, 70, 65, 60, 55, 50)
"""Qualities tried, highest first: 95 is the default; steps of 2-3 keep a budget from being wasted by the gap to the next."""
MIN_QUALITY = 75
"""The lowest quality picked unless ``--min-quality`` says otherwise. On the real slices at 256 px quality 75 keeps
the brain window at about 34 dB PSNR (about 5 grey levels of error, README); below it 8x8 blocks show in that
narrow window, where one grey level is a third of a HU, and a smaller ``--size`` loses less."""
SAMPLE = 64
"""Slices in the measured sample (seeded, so a re-run measures the same ones)."""
SEED = 0
MARGIN = 0.10
"""A quality is picked only when its estimate plus this fraction fits: the sample's mean size is an estimate."""


@dataclass(frozen=True)
class Rung:
    """One quality of the ladder: bytes on disk per image and the median PSNR (dB) of each channel."""

    quality: int
    per_image: float
    psnr: tuple[float, ...]


@dataclass(frozen=True)
class Ladder:
    """The measured rungs for a run of ``images`` inputs, whose channels are ``names``."""

    rungs: tuple[Rung, ...]
    images: int
    names: tuple[str, ...]
    sampled: int

    def rung(self, quality: int) -> Rung:
        return next(r for r in self.rungs if r.quality == quality)

    def total(self, rung: Rung) -> int:
        """The estimated output of the whole run at ``rung``'s quality (images and manifest)."""
        return int(self.images * (rung.per_image + MANIFEST_BYTES))

    def needs(self, rung: Rung) -> int:
        """The space asked of the budget: the estimate plus ``MARGIN``."""
        return int(self.total(rung) * (1 + MARGIN))

    def best(self, available: int, floor: int = 1) -> Rung | None:
        """The highest quality of at least ``floor`` whose estimate with its margin fits ``available``."""
        return next((r for r in self.rungs if r.quality >= floor and self.needs(r) <= available), None)

    def psnr_text(self, rung: Rung) -> str:
        """``brain 37.6 / subdural 41.9 / bone 36.4 dB``."""
        return " / ".join(f"{n} {p:.1f}" for n, p in zip(self.names, rung.psnr)) + " dB"

    def line(self, rung: Rung) -> str:
        """One rung as a sentence: quality, estimated total, PSNR per channel against the lossless render."""
        return (f"JPEG quality {rung.quality}: estimated {human(self.total(rung))} for {self.images:,} images "
                f"({human(rung.per_image)} each, +{MARGIN:.0%} margin {human(self.needs(rung))}); PSNR against the lossless "
                f"render of {self.sampled} sampled slices {self.psnr_text(rung)}")

    def table(self, available: int | None = None) -> str:
        """Every rung as a row: quality, KB per image, estimated total, PSNR per channel (and whether it fits)."""
        head = ["quality", "KB/image", "total"] + [f"{n} dB" for n in self.names] + (["fits"] if available is not None else [])
        rows = [head]
        for r in self.rungs:
            fits = (["yes" if self.needs(r) <= available else "no"] if available is not None else [])
            rows.append([str(r.quality), f"{r.per_image / 1000:.1f}", human(self.total(r))] + [f"{p:.1f}" for p in r.psnr] + fits)
        widths = [max(len(row[k]) for row in rows) for k in range(len(head))]
        return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


class _Capture:
    """A sink that keeps the rendered images in memory (BGR, as JPEG sinks take them): the lossless render."""

    bgr = True

    def __init__(self) -> None:
        self.images: dict[str, np.ndarray] = {}

    def open(self, number: int, capacity: int) -> _Capture:
        return self

    def write(self, image_id: str, image: np.ndarray, labels: np.ndarray | None = None) -> tuple[str, int | None]:
        self.images[image_id] = image.copy()
        return image_id, None

    def close(self) -> None:
        """Nothing to make visible: the images stay in memory."""

    def abort(self) -> None:
        self.images.clear()


def sample(todo: Sequence[Input], n: int = SAMPLE, seed: int = SEED) -> tuple[Input, ...]:
    """A seeded random sample of ``todo`` in input order (the same one on every run of the same inputs)."""
    if len(todo) <= n:
        return tuple(todo)
    picks = np.sort(np.random.default_rng(seed).choice(len(todo), n, replace=False))
    return tuple(todo[int(i)] for i in picks)


def jpeg_sink(sink: SinkSpec) -> SinkSpec:
    """The JPEG kind of a run's sink: itself when lossy, else JPEG files for a folder and JPEG bytes for shards."""
    from ichprep.store.images import ImageFiles

    if isinstance(sink, ImageFiles):
        return sink if sink.fmt == "jpg" else replace(sink, fmt="jpg")
    return sink if sink.codec == "jpeg" else replace(sink, codec="jpeg")


def measure(job: Job, todo: Sequence[Input], scratch: Path, qualities: Sequence[int] = LADDER) -> Ladder:
    """Render a seeded sample of ``todo`` once, store it at each quality in ``scratch`` (removed again) and measure it."""
    from ichprep.convert.run.worker import Task, run

    capture = _Capture()
    run(replace(job, sink=capture), Task(sample(todo)))
    rendered = capture.images
    names = tuple(c.name for c in job.channels)
    sink = jpeg_sink(job.sink)
    rungs = []
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        for quality in sorted(set(qualities), reverse=True):
            folder = scratch / f"q{quality}"
            folder.mkdir(parents=True)
            writer = replace(sink, out=str(folder), quality=quality).open(0, max(len(rendered), 1))
            for image_id, image in rendered.items():
                writer.write(image_id, image)
            writer.close()
            per_image = disk_usage(folder) / len(rendered) if rendered else 0.0
            rungs.append(Rung(quality, per_image, _psnr(folder, rendered, len(names)) if rendered else (math.inf,) * len(names)))
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Ladder(tuple(rungs), len(todo), names, len(rendered))


def _psnr(folder: Path, rendered: dict[str, np.ndarray], channels: int) -> tuple[float, ...]:
    """Median PSNR per channel of the images stored in ``folder`` (read as training reads them) against ``rendered``."""
    from ichprep.store import open_store

    store = open_store(folder)
    scores = []
    for k, image_id in enumerate(store.ids):
        stored = store.read(k).reshape(-1, channels).astype(np.float64)
        lossless = rendered[image_id][..., ::-1] if rendered[image_id].ndim == 3 else rendered[image_id]
        scores.append([psnr(stored[:, c], lossless.reshape(-1, channels)[:, c]) for c in range(channels)])
    return tuple(float(v) for v in np.median(np.array(scores), axis=0))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images in dB (infinite when they are equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)

"""One worker task: read a batch of inputs, render each, give the images to the task's sink, return rows.

Each input is read once and everything comes from that read: the rendered image (written by
the worker itself, so only small manifest rows travel back), the header row and the pixel
statistics. One function serves every output format, because a sink hides the difference between
image files and shards, and ``scan``, which has no sink and only reads and measures.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ichprep.convert.read import dicom
from ichprep.convert.render.renderer import Renderer
from ichprep.convert.sources import Input, Source
from ichprep.errors import DiskFullError
from ichprep.store import Sink, SinkSpec
from ichprep.windows import Channel


@dataclass(frozen=True)
class Job:
    """What every task of a run shares, small and picklable: where inputs come from, how to render, where to.

    With no ``sink`` (``scan``) nothing is rendered: inputs are only read and measured.
    """

    source: Source
    channels: tuple[Channel, ...] = ()
    size: int = 256
    crop: bool = True
    sink: SinkSpec | None = None


@dataclass(frozen=True)
class Task:
    """One unit of work: a batch of inputs, its number (which names its shard) and their shard labels."""

    items: tuple[Input, ...]
    number: int = 0
    labels: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    """What a task sends back: one manifest row per input, and the bytes it read from the source."""

    rows: list[dict[str, Any]]
    fetched: int


@lru_cache(maxsize=4)
def _renderer(channels: tuple[Channel, ...], size: int, crop: bool) -> Renderer:
    """One renderer (and its lookup tables) per worker process and settings."""
    return Renderer(channels, size, crop)


def run(job: Job, task: Task) -> Done:
    """Convert a task's inputs; its sink's output becomes visible only if the whole task finishes."""
    import cv2

    cv2.setNumThreads(1)
    before = job.source.fetched
    sink = job.sink.open(task.number, len(task.items)) if job.sink is not None else None
    try:
        rows = [convert_one(item, data, job, sink, task.labels.get(item.id)) for item, data in job.source.read(task.items)]
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    if sink is not None:
        sink.close()
    return Done(rows, job.source.fetched - before)


def convert_one(item: Input, data: bytes | Exception, job: Job, sink: Sink | None, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Read, render and store one input; never raises for a bad file, returns its manifest row.

    ``data`` is the input's bytes, or the exception its source met reading them (a
    ``sources.ReadError``, such as a network failure or a bad CRC-32, is a ``ValueError``).
    """
    row: dict[str, Any] = {"id": item.id, "source": item.source, "fname": item.source, "status": "failed", "error": None, "output": None}
    try:
        if isinstance(data, Exception):
            raise data
        parsed = dicom.read(data)
        row.update(parsed.header)
        sl = parsed.decode()
        row["header_fix"] = sl.fix
        row.update(dicom.pixel_stats(sl.raw, sl.slope, sl.intercept))
        if sink is not None:
            image = _renderer(job.channels, job.size, job.crop).render(sl, bgr=job.sink.bgr)
            row["output"], row["row"] = sink.write(item.id, image, labels)
        row["status"] = "ok"
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on the output device while writing {item.id}") from None
        row["error"] = f"cannot read: {dicom.one_line(err)}"
    except (dicom.DicomError, ValueError, KeyError) as err:
        row["error"] = dicom.one_line(err)
    except MemoryError:
        row["error"] = "out of memory decoding this file"
    except Exception as err:  # a file that breaks a library in a new way must not stop 675,000 others
        row["error"] = f"unexpected {type(err).__name__}: {dicom.one_line(err)}"
    return row

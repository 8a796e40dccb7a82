"""What every output format offers: a sink that a worker task writes to, and a store that reads back.

Kept apart from the formats themselves so that naming the interface imports neither OpenCV,
h5py nor pandas.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Sink(Protocol):
    """Where one worker task's images go."""

    def write(self, image_id: str, image: np.ndarray, labels: np.ndarray | None = None) -> tuple[str, int | None]:
        """Store one image; returns (output file name relative to OUT, row in it or None)."""

    def close(self) -> None:
        """Make everything written visible under its final name."""

    def abort(self) -> None:
        """Drop everything not yet visible."""


class SinkSpec(Protocol):
    """What the parent hands to workers: picklable, and opened once per task."""

    bgr: bool
    """Whether the sink takes images in OpenCV's BGR channel order (else RGB)."""

    def open(self, number: int, capacity: int) -> Sink:
        """The sink of task ``number``, which writes at most ``capacity`` images."""


class Store(Protocol):
    """convert's output read back: ``ids`` in a fixed order, one RGB uint8 image by position."""

    ids: list[str]

    def __len__(self) -> int: ...

    def read(self, index: int) -> np.ndarray: ...

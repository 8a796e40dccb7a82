"""convert's output formats: written by convert's sinks, read back by training and the contact sheet.

Both formats have the same two sides. A *sink* (``ImageFiles``, ``Shards``) is a small picklable
recipe that a worker task ``open``s, ``write``s images to, and ``close``s to make them visible (or
``abort``s). A *store* (``ImageFolder``, ``ShardStore``) reads them back one at a time by position,
without torch; ``open_store`` picks the right one for a folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ichprep import layout
from ichprep.errors import IchprepError
from ichprep.store.images import ImageFiles, ImageFolder
from ichprep.store.shards import Shards, ShardStore


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


def open_store(data: str | Path) -> ImageFolder | ShardStore:
    """The store in ``data``: HDF5 shards when any shard file is there, else an image folder."""
    data = Path(data)
    if not data.is_dir():
        raise IchprepError(f"{data}: not a folder of converted images or shards")
    if layout.shards(data):
        return ShardStore(data)
    store = ImageFolder(data)
    if not len(store):
        raise IchprepError(f"{data}: no .png/.jpg images and no {layout.SHARD_GLOB} files")
    return store


__all__ = ["ImageFiles", "ImageFolder", "ShardStore", "Shards", "Sink", "SinkSpec", "Store", "open_store"]

"""convert's output formats: written by convert's sinks, read back by training and the contact sheet.

Both formats have the same two sides (``base``). A *sink* (``ImageFiles``, ``Shards``) is a small
picklable recipe that a worker task ``open``s, ``write``s images to, and ``close``s to make them
visible (or ``abort``s). A *store* (``ImageFolder``, ``ShardStore``) reads them back one at a time
by position, without torch; ``open_store`` picks the right one for a folder. ``open_converted``
is the way into a whole converted folder (``converted``): the images, their settings, the
manifest's slice columns and the default labels.

The formats are imported on first use: a conversion worker that only encodes images then never
pays for pandas or h5py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ichprep import layout
from ichprep.errors import IchprepError
from ichprep.store.base import Sink, SinkSpec, Store

if TYPE_CHECKING:
    from ichprep.store.converted import Converted
    from ichprep.store.images import ImageFiles, ImageFolder
    from ichprep.store.shards import Shards, ShardStore

FORMATS = {"ImageFiles": "images", "ImageFolder": "images", "Shards": "shards", "ShardStore": "shards"}
"""Each format's public class and the module that holds it."""
LAZY = {**FORMATS, "Converted": "converted"}
"""Every public class imported on first use, and its module."""

__all__ = ["Converted", "ImageFiles", "ImageFolder", "ShardStore", "Shards", "Sink", "SinkSpec", "Store", "open_converted",
           "open_store"]


def __getattr__(name: str) -> Any:
    """A format's class (or ``Converted``) from its module, imported when first asked for."""
    if name in LAZY:
        from importlib import import_module

        return getattr(import_module(f"ichprep.store.{LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(data: str | Path) -> ImageFolder | ShardStore:
    """The store in ``data``: HDF5 shards when any shard file is there, else an image folder."""
    from ichprep.store.images import ImageFolder
    from ichprep.store.shards import ShardStore

    data = Path(data)
    if not data.is_dir():
        raise IchprepError(f"{data}: not a folder of converted images or shards")
    if layout.shards(data):
        return ShardStore(data)
    store = ImageFolder(data)
    if not len(store):
        raise IchprepError(f"{data}: no .png/.jpg images and no {layout.SHARD_GLOB} files")
    return store


def open_converted(data: str | Path) -> Converted:
    """convert's output in ``data`` (``converted.Converted``), each part read when first asked for."""
    from ichprep.store.converted import Converted

    return Converted(Path(data))

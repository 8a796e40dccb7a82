"""convert's output formats: written by convert's sinks, read back by training and the contact sheet.

An output folder holds one image file per slice (``<id>.png``/``.jpg``) or HDF5 shards; both are
read the same way, one image at a time by position, without torch.

The readers are imported on first use: a conversion worker that only encodes images
(``ichprep.store.images``) then never pays for pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ichprep.store.readers import FolderSource, ImageSource, ShardSource, open_source

__all__ = ["FolderSource", "ImageSource", "ShardSource", "open_source"]


def __getattr__(name: str) -> Any:
    """The readers' public names, from ``ichprep.store.readers`` when first asked for."""
    if name in __all__:
        from ichprep.store import readers

        return getattr(readers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""convert's output formats: written by convert's sinks, read back by training and the contact sheet.

An output folder holds one image file per slice (``<id>.png``/``.jpg``) or HDF5 shards; both are
read the same way, one image at a time by position, without torch.
"""

from ichprep.store.readers import FolderSource, ImageSource, ShardSource, open_source

__all__ = ["FolderSource", "ImageSource", "ShardSource", "open_source"]

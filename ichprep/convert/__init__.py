"""DICOMs to windowed, cropped, resized 3-channel images with a manifest of every input.

The pipeline reads as its modules: ``sources`` (where inputs come from) -> ``dicom``/``header``
(bytes to header, stored pixels and HU mapping) -> ``render`` with ``windows`` and ``geometry``
(the image) -> a sink of ``ichprep.store`` (files or shards) -> ``manifest`` rows. ``worker`` does
that for one task, ``parallel`` runs tasks on processes or Dask, ``pipeline`` drives a whole run,
``resume`` finds what an earlier run left and ``budget`` keeps the output within the disk.
"""

from ichprep.convert.pipeline import Options, Result, convert, scan
from ichprep.settings import Settings

__all__ = ["Options", "Result", "Settings", "convert", "scan"]

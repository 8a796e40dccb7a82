"""DICOMs to windowed, cropped, resized 3-channel images with a manifest of every input.

The pipeline reads as its modules: ``sources`` (where inputs come from) -> ``dicom``/``header``
(bytes to header, stored pixels and HU mapping) -> ``render`` with ``windows`` and ``geometry``
(the image) -> a sink of ``ichprep.store`` (files or shards) -> ``manifest`` rows; ``pipeline``
runs it resumably over processes and ``budget`` keeps it within the disk.
"""

from ichprep.convert.pipeline import Options, Result, convert, scan

__all__ = ["Options", "Result", "convert", "scan"]

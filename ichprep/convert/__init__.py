"""DICOMs to windowed, cropped, resized 3-channel images with a manifest of every input.

The pipeline reads as its modules: ``sources`` (where inputs come from) -> ``dicom``/``header``
(bytes to header, stored pixels and HU mapping) -> ``render`` with ``windows`` and ``geometry``
(the image) -> a sink of ``ichprep.store`` (files or shards) -> ``manifest`` rows. ``worker`` does
that for one task, ``parallel`` runs tasks on processes or Dask, ``pipeline`` drives a whole run,
``resume`` finds what an earlier run left and ``budget`` keeps the output within the disk.

The pipeline's names are imported on first use: ``ichprep.convert.read.dicom`` or ``.render`` alone
(a worker process, a notebook rendering one slice) then never pays for pandas and joblib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ichprep.settings import Settings

if TYPE_CHECKING:
    from ichprep.convert.pipeline import Options, Result, convert, scan

__all__ = ["Options", "Result", "Settings", "convert", "scan"]


def __getattr__(name: str) -> Any:
    """``Options``, ``Result``, ``convert`` and ``scan`` from ``pipeline``, imported when first asked for."""
    if name in ("Options", "Result", "convert", "scan"):
        from ichprep.convert import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

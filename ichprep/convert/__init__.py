"""DICOMs to windowed, cropped, resized 3-channel images with a manifest of every input.

The folders are the stages: ``sources`` (where inputs come from) -> ``read`` (bytes to header,
stored pixels and HU mapping) -> ``render`` (windows, crop, resize: the image) -> a sink of
``ichprep.store`` (files or shards) -> ``run.manifest`` rows. ``run`` holds what drives them:
``run.worker`` does that for one task, ``run.parallel`` runs tasks on processes or Dask,
``run.pipeline`` a whole run, with ``run.resume`` and ``run.budget`` keeping it safe and on the disk.

The names below are imported on first use: ``ichprep.convert.read.dicom`` or ``.render``
alone (a worker process, a notebook rendering one slice) then never pays for pandas and joblib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ichprep.convert.run.pipeline import Options, Result, convert, scan
    from ichprep.settings import Settings

__all__ = ["Options", "Result", "Settings", "convert", "scan"]


def __getattr__(name: str) -> Any:
    """``Options``, ``Result``, ``convert`` and ``scan`` from ``run.pipeline``, ``Settings``, imported when first asked for."""
    if name == "Settings":
        from ichprep.settings import Settings

        return Settings
    if name in ("Options", "Result", "convert", "scan"):
        from ichprep.convert.run import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Where a conversion's DICOMs come from: one ``Source`` interface over every kind of input.

``open_source(src)`` recognises a folder (searched recursively), a ``.zip`` archive (read in
place), a single file, or a text/CSV list of paths; ``discover`` lists its inputs; ``read_ids``
reads an ``--ids`` selection.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection
from pathlib import Path

from ichprep.convert.sources.base import (
    MAX_FILE_BYTES,
    Input,
    Source,
    id_of,
    is_safe_id,
)
from ichprep.convert.sources.files import Files, has_preamble
from ichprep.convert.sources.ids import read_ids
from ichprep.convert.sources.zipped import ZipArchive
from ichprep.errors import SourceError


def open_source(src: str | Path) -> Source:
    """The source ``src`` names: a folder, a zip archive, a DICOM file, or a list of paths."""
    src = Path(src)
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    if src.is_dir():
        return Files(src, "folder")
    if zipfile.is_zipfile(src):
        return ZipArchive(src)
    if src.suffix.lower() == ".dcm" or has_preamble(str(src)):
        return Files(src, "file")
    return Files(src, "list")


def discover(src: str | Path, ids: Collection[str] | None = None) -> list[Input]:
    """The inputs of ``src``, restricted to ``ids`` when given."""
    return open_source(src).inputs(ids)


__all__ = ["MAX_FILE_BYTES", "Files", "Input", "Source", "ZipArchive", "discover", "id_of", "is_safe_id", "open_source",
           "read_ids"]

"""The competition's zip archive, read member by member in place: nothing is ever extracted.

Member names are only identifiers: a member ``../../x.dcm`` is the input ``x``, and no path on
this file system is ever made from a name inside the archive.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ichprep.convert.sources.base import MAX_FILE_BYTES, Input, id_of, wanted
from ichprep.errors import SourceError


@lru_cache(maxsize=4)
def _archive(path: str) -> zipfile.ZipFile:
    """One open archive per worker process: reopening a 180 GB zip's directory per file is slow."""
    return zipfile.ZipFile(path)


@dataclass
class ZipArchive:
    """Every ``*.dcm`` member of a zip archive on this machine."""

    path: Path
    fetched: int = 0

    @property
    def name(self) -> str:
        return str(self.path)

    def inputs(self, ids: Collection[str] | None = None) -> list[Input]:
        try:
            with zipfile.ZipFile(self.path) as zf:
                names = [info.filename for info in zf.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError) as err:
            raise SourceError(f"{self.path}: not a readable zip archive ({err})") from None
        found = [Input(id=id_of(name), source=f"{self.path}!{name}", ref=name) for name in sorted(names) if name.lower().endswith(".dcm")]
        return wanted(found, ids)

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        archive = _archive(str(self.path))
        for item in items:
            try:
                info = archive.getinfo(item.ref)
                if info.file_size > MAX_FILE_BYTES:
                    raise ValueError(f"member is {info.file_size} bytes, larger than any CT slice (limit {MAX_FILE_BYTES})")
                data = archive.read(info)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                yield item, err
                continue
            self.fetched += info.compress_size
            yield item, data

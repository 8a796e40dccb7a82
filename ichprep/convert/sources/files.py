"""DICOM files on this machine: a folder searched recursively, a list of paths, or one file."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ichprep.convert.sources.base import MAX_FILE_BYTES, Input, id_of, wanted
from ichprep.errors import SourceError

PATH_COLUMNS = ("path", "source", "fname", "file", "filename")


def has_preamble(path: str) -> bool:
    """True for a regular file that starts with the 128-byte preamble and ``DICM``.

    Anything but a regular file (a FIFO, a device) is never opened: opening a FIFO blocks forever.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def from_folder(root: Path) -> list[Input]:
    """Every ``*.dcm`` under ``root`` (an input even if unreadable) and other files with a DICM preamble.

    Symbolic links to folders are not followed, so a link loop cannot trap the walk. Hidden
    files and folders (``.git``, macOS's ``._ID_x.dcm`` resource forks) are not inputs.
    """
    inputs: list[Input] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if name.lower().endswith(".dcm") or has_preamble(path):
                inputs.append(Input(id_of(name), path, path))
    return inputs


def from_list(listing: Path) -> list[Input]:
    """Paths listed one per line, or in a CSV column named path/source/fname/file.

    Relative paths are taken relative to the list's folder, so a list travels with its data.
    """
    base = str(listing.parent)
    if listing.suffix.lower() == ".csv":
        import pandas as pd  # a CSV list is rare: workers, which read the files, never need pandas

        table = pd.read_csv(listing, dtype=str)
        column = next((c for c in PATH_COLUMNS if c in table.columns), None)
        if column is None:
            raise SourceError(f"{listing}: no column named one of {', '.join(PATH_COLUMNS)}")
        entries = table[column].dropna().tolist()
    else:
        entries = [line.strip() for line in listing.read_text(encoding="utf-8", errors="replace").splitlines()]
    inputs = []
    for entry in entries:
        if not entry or entry.startswith("#"):
            continue
        path = os.path.join(base, entry)
        inputs.append(Input(id_of(entry), path, path))
    return inputs


def read_file(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """A file's bytes; ``OSError``/``ValueError`` with a clear reason when it cannot be read."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a FIFO, device or socket could block or never end)")
    if info.st_size > limit:
        raise ValueError(f"file is {info.st_size} bytes, larger than any CT slice (limit {limit})")
    with open(path, "rb") as fh:
        data = fh.read(info.st_size + 1)
    if len(data) > info.st_size:
        raise ValueError("file grew while being read")
    return data


@dataclass
class Files:
    """A folder (searched recursively), a text/CSV list of paths, or a single file."""

    location: Path
    kind: str
    """``folder``, ``list`` or ``file``."""
    fetched: int = 0

    @property
    def name(self) -> str:
        return str(self.location)

    def for_workers(self) -> Files:
        return Files(self.location, self.kind)

    def inputs(self, ids: Collection[str] | None = None) -> list[Input]:
        if self.kind == "folder":
            found = from_folder(self.location)
        elif self.kind == "list":
            found = from_list(self.location)
        else:
            found = [Input(id_of(self.location.name), str(self.location), str(self.location))]
        return wanted(found, ids)

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        for item in items:
            try:
                data = read_file(item.ref)
            except (OSError, ValueError) as err:
                yield item, err
                continue
            self.fetched += len(data)
            yield item, data

"""Find the inputs of a run: a folder, a list of paths, or the competition's zip archive.

An input is a small picklable record; its bytes are read by the worker that converts it,
so nothing large crosses process boundaries. Zip members are read straight from the archive
and their names are only ever identifiers, never paths on this file system.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Iterable

import pandas as pd

from ichprep.errors import SourceError

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A CT slice is about 0.5 MB; anything past this is refused before it is read into memory."""

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""An id becomes a file name in OUT: no separators, no leading dot, bounded length."""

ID_COLUMNS = ("SOPInstanceUID", "id", "ID", "image", "Image")
PATH_COLUMNS = ("path", "source", "fname", "file", "filename")


@dataclass(frozen=True)
class Input:
    """One DICOM to convert: its id (file stem), where it is shown to come from, how to read it."""

    id: str
    source: str
    path: str
    member: str | None = None


def id_of(name: str) -> str:
    """The image id of a file or member name: its stem (``ID_000012eaf`` for ``.../ID_000012eaf.dcm``)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base[:-4] if base.lower().endswith(".dcm") else base


def is_safe_id(image_id: str) -> bool:
    """Whether ``image_id`` can name a file inside OUT without escaping it."""
    return bool(SAFE_ID.fullmatch(image_id)) and ".." not in image_id


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
                inputs.append(Input(id=id_of(name), source=path, path=path))
    return inputs


def from_list(listing: Path) -> list[Input]:
    """Paths listed one per line, or in a CSV column named path/source/fname/file.

    Relative paths are taken relative to the list's folder, so a list travels with its data.
    """
    base = listing.parent
    if listing.suffix.lower() == ".csv":
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
        path = Path(entry) if os.path.isabs(entry) else base / entry
        inputs.append(Input(id=id_of(entry), source=str(path), path=str(path)))
    return inputs


def from_zip(archive: Path) -> list[Input]:
    """Every ``*.dcm`` member of a zip archive, read in place."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [info.filename for info in zf.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as err:
        raise SourceError(f"{archive}: not a readable zip archive ({err})") from None
    return [
        Input(id=id_of(name), source=f"{archive}!{name}", path=str(archive), member=name)
        for name in sorted(names)
        if name.lower().endswith(".dcm")
    ]


def discover(src: Path, ids: Iterable[str] | None = None) -> list[Input]:
    """The inputs of ``src`` (folder, zip, or list file), restricted to ``ids`` when given."""
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    if src.is_dir():
        inputs = from_folder(src)
    elif zipfile.is_zipfile(src):
        inputs = from_zip(src)
    elif src.suffix.lower() == ".dcm" or has_preamble(str(src)):
        inputs = [Input(id=id_of(src.name), source=str(src), path=str(src))]
    else:
        inputs = from_list(src)
    if ids is not None:
        wanted = set(ids)
        inputs = [i for i in inputs if i.id in wanted]
    return inputs


def read_ids(path: Path) -> list[str]:
    """Image ids from a text file (one per line), a CSV or a Parquet table (an id column)."""
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv", ".fth", ".feather"):
        table = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".fth": pd.read_feather, ".feather": pd.read_feather}[suffix](path)
        column = next((c for c in ID_COLUMNS if c in table.columns), None)
        if column is None:
            raise SourceError(f"{path}: no id column (one of {', '.join(ID_COLUMNS)})")
        values = table[column].dropna().astype(str)
        if column == "ID":
            values = values.str.rsplit("_", n=1).str[0].where(values.str.count("_") >= 2, values)
        return sorted(set(values))
    return sorted({line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()})


@lru_cache(maxsize=4)
def _archive(path: str) -> zipfile.ZipFile:
    """One open archive per worker process: reopening a 180 GB zip's directory per file is slow."""
    return zipfile.ZipFile(path)


def read_bytes(item: Input, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; ``OSError``/``ValueError`` with a clear reason when it cannot be read."""
    if item.member is None:
        info = os.stat(item.path)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file (a FIFO, device or socket could block or never end)")
        if info.st_size > limit:
            raise ValueError(f"file is {info.st_size} bytes, larger than any CT slice (limit {limit})")
        with open(item.path, "rb") as fh:
            data = fh.read(info.st_size + 1)
        if len(data) > info.st_size:
            raise ValueError("file grew while being read")
        return data
    info = _archive(item.path).getinfo(item.member)
    if info.file_size > limit:
        raise ValueError(f"member is {info.file_size} bytes, larger than any CT slice (limit {limit})")
    return _archive(item.path).read(info)

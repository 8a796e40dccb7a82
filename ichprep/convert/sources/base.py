"""The input side of a conversion: what an input is, and what every kind of source can do.

A source lists its inputs once, in the parent (``inputs``), as small picklable records; workers
then read their batch's bytes (``read``) straight from wherever the source keeps them, so nothing
large crosses process boundaries and no worker lists the source again. A stream (a zip on
standard input, or from a server that ignores ``Range``) can only be read once, front to back:
its inputs arrive as the parent reads it, each carrying its own bytes. Input names are only ever
identifiers: an id becomes a file name in OUT only after ``is_safe_id`` has checked it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A CT slice is about 0.5 MB; anything past this is refused before it is read into memory."""

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""An id becomes a file name in OUT: no separators, no leading dot, bounded length."""


@dataclass(frozen=True, slots=True)
class Input:
    """One DICOM to convert: its id (file stem), where it comes from, and how its source finds it.

    ``ref`` is the source's own business: a path, a zip member's place in the archive, or a
    streamed member's bytes. 750,000 of these sit in the parent, hence the slots, and a member
    keeps only its name beside the archive's (one string shared by all) rather than its own
    ``<archive>!<member>``.
    """

    id: str
    where: str
    """The file, or the archive that holds the input (as shown: a URL without its credentials)."""
    ref: Any
    member: str | None = None
    """The input's name inside the archive ``where``; None for a file."""

    @property
    def source(self) -> str:
        """Where the input is shown to come from, as the manifest's ``source``: a path, or ``<archive>!<member>``."""
        return self.where if self.member is None else f"{self.where}!{self.member}"


class ReadError(ValueError):
    """An input's bytes could not be had (a network failure, a corrupt zip member): its row's reason."""


class Source(Protocol):
    """Where a run's DICOMs come from: a folder, a list of paths, a zip archive on disk, over HTTP or streamed."""

    name: str
    """How the source is shown in messages and the manifest (a URL without its credentials)."""

    fetched: int
    """Bytes this process has read from the source so far (listing, stream, members)."""

    def inputs(self, ids: Collection[str] | None = None) -> list[Input] | Iterator[Input]:
        """Every input, or only those whose id is in ``ids``, in the order they are best read.

        A list, read once by the parent; for a stream an iterator that reads it as it goes.
        """

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        """Each item's bytes, or the exception that says why they could not be read, in order."""

    def for_workers(self) -> Source:
        """The source as workers get it: what ``read`` needs, none of what only the parent holds."""


def id_of(name: str) -> str:
    """The image id of a file or member name: its stem (``ID_000012eaf`` for ``.../ID_000012eaf.dcm``).

    The last component as ``PurePosixPath(name).name`` gives it (backslashes count as
    separators, ``.`` and empty components are skipped), without pathlib's cost: this runs once
    per member of a 750,000-member directory.
    """
    path = name.replace("\\", "/")
    base = path[path.rfind("/") + 1 :]
    if base in ("", "."):
        base = next((part for part in reversed(path.split("/")) if part not in ("", ".")), "")
    return base[:-4] if base.lower().endswith(".dcm") else base


def is_safe_id(image_id: str) -> bool:
    """Whether ``image_id`` can name a file inside OUT without escaping it."""
    return bool(SAFE_ID.fullmatch(image_id)) and ".." not in image_id


def wanted(inputs: list[Input], ids: Collection[str] | None) -> list[Input]:
    """``inputs`` restricted to ``ids`` (all of them when ``ids`` is None)."""
    if ids is None:
        return inputs
    keep = set(ids)
    return [i for i in inputs if i.id in keep]

"""The input side of a conversion: what an input is, and what every kind of source can do.

A source lists its inputs once, in the parent (``inputs``), as small picklable records; workers
then read their batch's bytes (``read``) straight from wherever the source keeps them, so nothing
large crosses process boundaries and no worker lists the source again. Input names are only ever
identifiers: an id becomes a file name in OUT only after ``is_safe_id`` has checked it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A CT slice is about 0.5 MB; anything past this is refused before it is read into memory."""

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""An id becomes a file name in OUT: no separators, no leading dot, bounded length."""


@dataclass(frozen=True, slots=True)
class Input:
    """One DICOM to convert: its id (file stem), where it is shown to come from, and how its source finds it."""

    id: str
    source: str
    ref: str


class Source(Protocol):
    """Where a run's DICOMs come from: a folder, a list of paths, a zip archive."""

    name: str
    """How the source is shown in messages."""

    fetched: int
    """Bytes this process has read from the source so far."""

    def inputs(self, ids: Collection[str] | None = None) -> list[Input]:
        """Every input, or only those whose id is in ``ids``; read once, by the parent."""

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        """Each item's bytes, or the exception that says why they could not be read, in order."""


def id_of(name: str) -> str:
    """The image id of a file or member name: its stem (``ID_000012eaf`` for ``.../ID_000012eaf.dcm``).

    Plain string work: it runs once per input, 750,000 times on the competition's zip.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
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

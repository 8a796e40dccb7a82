"""What a path a user gives must be, checked before any work starts.

Each check raises ``IchprepError`` with the option's name, the path and what to do, so that a
wrong path ends as one line before anything is read or created, whether the call came from the
command line or a notebook.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ichprep.errors import IchprepError

REMOTE = ("http://", "https://", "kaggle://")
"""Sources that are not on this file system: checked when opened, not here."""


def is_local(src: str | Path) -> bool:
    """Whether ``src`` names something on this file system, rather than a URL, ``kaggle://`` or ``-`` (standard input)."""
    text = str(src)
    return text != "-" and not text.lower().startswith(REMOTE)


def existing_source(src: str | Path, what: str) -> str | Path:
    """``src`` exists if it is a path; a URL, ``kaggle://`` or ``-`` is checked when it is opened."""
    return existing(Path(src), what) if is_local(src) else src


def existing(path: Path, what: str, kind: str | None = None) -> Path:
    """``path`` exists, and is a ``file`` or a ``folder`` when ``kind`` says which it must be."""
    if not path.exists():
        raise IchprepError(f"{what} {path} does not exist")
    if kind == "file" and path.is_dir():
        raise IchprepError(f"{what} {path} is a folder; give a file")
    if kind == "folder" and not path.is_dir():
        raise IchprepError(f"{what} {path} is a file; give a folder")
    return path


def output_folder(path: Path, what: str) -> Path:
    """``path`` can be an output folder: it is one already, or nothing is there yet."""
    if path.exists() and not path.is_dir():
        raise IchprepError(f"{what} {path} is a file; give a folder (new or existing) for the output")
    _writable_parent(path, what)
    return path


def output_file(path: Path, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` can be an output file: not a folder, in a folder that exists, with one of ``suffixes``."""
    if path.is_dir():
        raise IchprepError(f"{what} {path} is a folder; give a file name such as {path / ('out' + (suffixes or ('',))[0])}")
    if suffixes and path.suffix.lower() not in suffixes:
        raise IchprepError(f"{what} {path}: give a {' or '.join(suffixes)} file name")
    if not path.parent.is_dir():
        raise IchprepError(f"{what} {path}: the folder {path.parent} does not exist")
    return path


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder (so the output can be created under it)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise IchprepError(f"{what} {path}: {parent} is a file, so nothing can be created under it")
            return


@contextmanager
def removed_if_refused(folder: Path) -> Iterator[None]:
    """Remove ``folder`` again if it did not exist and the block refuses to run (``IchprepError``).

    A run refused after it had to create its output folder (to lock it, to measure a sample)
    leaves no trace in a path that did not exist before.
    """
    fresh = not folder.exists()
    try:
        yield
    except IchprepError:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
        raise

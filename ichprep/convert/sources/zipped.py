"""A zip archive read in place by offset, on this machine or over HTTP: nothing is ever extracted.

The parent reads the directory once (``inputs``) and hands workers each member's place in
the archive; a worker reads a run of neighbouring members as one byte range (one request
over HTTP, however many slices it holds), takes each member's data out of it in memory,
inflates it and checks its CRC-32. No worker parses the directory.

Member names are only identifiers: a member ``../../x.dcm`` is the input ``x``, and no path on
this file system is ever made from a name inside the archive.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from ichprep.convert.sources.base import MAX_FILE_BYTES, Input, ReadError, id_of
from ichprep.convert.sources.zipformat import (
    LOCAL_HEADER,
    TAIL,
    Member,
    find_directory,
    local_skip,
    members,
    unpack,
)
from ichprep.errors import SourceError

RUN_GAP = 64 * 1024
"""Members at most this far apart share one range; the bytes between them are read and dropped."""
RUN_BYTES = 64 * 1024 * 1024
"""The longest range one request asks for (about 250 deflated slices)."""
CHUNK = 1024 * 1024


class Body(Protocol):
    """Bytes of one range, read front to back."""

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes; fewer only where the range ends."""

    def close(self) -> None: ...


class Reader(Protocol):
    """Random access to an archive's bytes: a file on this machine or a URL."""

    name: str
    fetched: int

    def tail(self, length: int) -> tuple[int, bytes]:
        """The archive's size and its last ``length`` bytes (all of it when shorter)."""

    def open_range(self, start: int, end: int) -> Body:
        """Bytes ``start`` to ``end`` (exclusive)."""

    def fresh(self) -> Reader:
        """A copy holding no open file or connection and counting from zero, to hand to a worker."""


@dataclass
class LocalFile:
    """An archive on this machine, read with ``pread``: each range opens the file, so nothing is held between tasks."""

    path: Path
    fetched: int = 0

    @property
    def name(self) -> str:
        return str(self.path)

    def tail(self, length: int) -> tuple[int, bytes]:
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data = os.pread(fh.fileno(), min(size, length), max(0, size - length))
        self.fetched += len(data)
        return size, data

    def open_range(self, start: int, end: int) -> Body:
        return _FileRange(self, open(self.path, "rb"), start, end)

    def fresh(self) -> LocalFile:
        return LocalFile(self.path)


@dataclass
class _FileRange:
    file: LocalFile
    handle: BinaryIO
    at: int
    end: int

    def read(self, n: int) -> bytes:
        data = os.pread(self.handle.fileno(), max(0, min(n, self.end - self.at)), self.at)
        self.at += len(data)
        self.file.fetched += len(data)
        return data

    def close(self) -> None:
        self.handle.close()


@dataclass
class ZipArchive:
    """Every ``*.dcm`` member of a zip archive, listed from its directory and read by offset."""

    reader: Reader

    @property
    def name(self) -> str:
        return self.reader.name

    @property
    def fetched(self) -> int:
        return self.reader.fetched

    def for_workers(self) -> ZipArchive:
        return replace(self, reader=self.reader.fresh())

    def inputs(self, ids: Collection[str] | None = None) -> list[Input]:
        """The ``.dcm`` members in the order of their data, so that neighbouring inputs are neighbouring bytes."""
        listed = self.members()
        keep = set(ids) if ids is not None else None
        found, name = [], self.name
        for member in listed:
            if member.name.endswith("/") or not member.name.lower().endswith(".dcm"):
                continue
            image_id = id_of(member.name)
            if keep is None or image_id in keep:
                found.append(Input(image_id, name, member, member.name))
        return found

    def members(self) -> list[Member]:
        """Every member of the archive, from its end records and central directory."""
        try:
            size, tail = self.reader.tail(TAIL)
            directory = find_directory(tail, size, self._read_at)
            if directory.offset >= size - len(tail):
                start = directory.offset - (size - len(tail))
                return members([tail[start : start + directory.size]], directory)
            body = self.reader.open_range(directory.offset, directory.offset + directory.size)
            try:
                return members(_chunks(body, directory.size), directory)
            finally:
                body.close()
        except ReadError as err:
            raise SourceError(f"{self.name}: {err}") from None
        except (ValueError, OSError) as err:
            raise SourceError(f"{self.name}: not a readable zip archive ({err})") from None

    def _read_at(self, offset: int, length: int) -> bytes:
        body = self.reader.open_range(offset, offset + length)
        try:
            return _exactly(body, length)
        finally:
            body.close()

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        for run in runs(items):
            yield from self._read_run(run)

    def _read_run(self, run: list[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        """One range for the whole run; a failure that ends the range fails the members not yet read."""
        first: Member = run[0].ref
        if _oversize(first):
            yield run[0], ReadError(f"member is {first.size} bytes, larger than any CT slice (limit {MAX_FILE_BYTES})")
            return
        done = 0
        try:
            body = self.reader.open_range(first.offset, run[-1].ref.end)
            try:
                at = first.offset
                for item in run:
                    data, at = _take(body, item.ref, at)
                    done += 1
                    yield item, data
            finally:
                body.close()
        except (ReadError, OSError) as err:
            for item in run[done:]:
                yield item, err


def _take(body: Body, member: Member, at: int) -> tuple[bytes | Exception, int]:
    """One member's bytes (or why not) from a range positioned at ``at``; and the position after it.

    A member whose own record is bad fails alone; an error of the range itself is raised.
    """
    _skip(body, member.offset - at)
    header = _exactly(body, LOCAL_HEADER.size)
    at = member.offset + len(header)
    try:
        skip = local_skip(header, member.name)
        if LOCAL_HEADER.size + skip + member.compressed > member.end - member.offset:
            raise ReadError(f"{member.name!r} overruns the next member: the directory does not match the data")
    except ReadError as err:
        return err, at
    _skip(body, skip)
    data = _exactly(body, member.compressed)
    at += skip + member.compressed
    try:
        return unpack(member, data), at
    except ReadError as err:
        return err, at


def runs(items: Sequence[Input]) -> Iterator[list[Input]]:
    """``items`` cut into runs of neighbouring members, each read as one range.

    A member too large to be a slice is a run of its own (and is never fetched).
    """
    run: list[Input] = []
    for item in items:
        if run and not _joins(run, item.ref):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def _joins(run: list[Input], member: Member) -> bool:
    """Whether ``member`` can be read in the same range as ``run``."""
    first, last = run[0].ref, run[-1].ref
    return (0 <= member.offset - last.end <= RUN_GAP and member.end - first.offset <= RUN_BYTES
            and not _oversize(member) and not _oversize(last))


def _oversize(member: Member) -> bool:
    return max(member.size, member.compressed) > MAX_FILE_BYTES


def _exactly(body: Body, n: int) -> bytes:
    """``n`` bytes of the range, or ``ReadError`` if it ends first."""
    data = body.read(n)
    if len(data) != n:
        raise ReadError(f"the archive ends {n - len(data)} bytes early: cut short, or its directory is wrong")
    return data


def _skip(body: Body, n: int) -> None:
    while n > 0:
        n -= len(_exactly(body, min(n, CHUNK)))


def _chunks(body: Body, size: int) -> Iterator[bytes]:
    """``size`` bytes of a range as a stream of pieces."""
    while size > 0:
        piece = _exactly(body, min(size, CHUNK))
        size -= len(piece)
        yield piece

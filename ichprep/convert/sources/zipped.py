"""A zip archive read in place by offset, on this machine or over HTTP: nothing is ever extracted.

The parent reads the directory once (``inputs``) and hands workers each member's place in
the archive; a worker reads a run of neighbouring members as one byte range (one request
over HTTP, however many slices it holds), takes each member's data out of it in memory,
inflates it and checks its CRC-32. No worker parses the directory. Over HTTP several ranges are
under way at once (``inflight``), and the parent can fetch ahead of its workers (``ahead``): a
task then carries its members' stored bytes, and the worker only inflates them.

Member names are only identifiers: a member ``../../x.dcm`` is the input ``x``, and no path on
this file system is ever made from a name inside the archive.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from ichprep.convert.sources.base import MAX_FILE_BYTES, Input, ReadError, id_of
from ichprep.convert.sources.inflight import WINDOW_MOST, InFlight, Limits, Meter, Span
from ichprep.convert.sources.streamed import Packed
from ichprep.convert.sources.zipformat import (
    LOCAL_HEADER,
    PROBE,
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
WASTE = 0.25
"""A gap wider than ``RUN_GAP`` is fetched and dropped only while a range's dropped bytes stay within this share of
the bytes it keeps: merging saves round trips, never at the price of downloading what a subset leaves out."""
WINDOW = 32 * 1024 * 1024
"""Bytes a worker's reads may hold ahead of its conversion (more when the link's round trip carries more)."""
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

    def meter(self) -> Meter | None:
        """The round trip and rate measured for this archive's link; None for a file, read one range at a time."""

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

    def meter(self) -> None:
        return None

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
            size, tail = self.reader.tail(PROBE)
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
        """Each item's bytes: from the task itself when the parent fetched them ahead, else by range."""
        if items and not any(isinstance(item.ref, Member) for item in items):
            for item in items:
                yield item, _unpacked(item.ref)
            return
        meter = self.reader.meter()
        if meter is None:
            for run in runs(items):
                yield from ((item, _unpacked(data)) for item, data in self._read_run(run))
            return
        window = _window(meter, WINDOW)
        for item, data in self._in_flight(items, meter, window):
            yield item, _unpacked(data)

    def ahead(self, items: list[Input], members: int) -> Ahead:
        """``items`` with their stored bytes, fetched ahead of the consumer by about ``members`` and two round trips."""
        meter = self.reader.meter()
        assert meter is not None, "only an archive over HTTP is fetched ahead"
        typical = sum(i.ref.end - i.ref.offset for i in items) // max(1, len(items))
        return Ahead(self, items, meter, _window(meter, members * typical))

    def _in_flight(self, items: Iterable[Input], meter: Meter, window: Callable[[], int],
                   limits: Limits | None = None, ordered: bool = True) -> Iterator[tuple[Input, Packed | Exception]]:
        """The members' stored data, their ranges fetched several at a time (in the items' order, or as they arrive)."""
        spans = (_span(run) for run in runs(items, lambda: Reach(meter.round_trip_bytes, meter.range_most())))
        fetching = InFlight(self.reader.open_range, spans, meter, window, ordered=ordered)
        if limits is not None:
            fetching.limits = limits
        for span in fetching:
            yield from _from_span(span)

    def _read_run(self, run: list[Input]) -> Iterator[tuple[Input, Packed | Exception]]:
        """One range for the whole run; a failure that ends the range fails the members not yet read."""
        first: Member = run[0].ref
        if _oversize(first):
            yield run[0], _too_large(first)
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


class Ahead:
    """The inputs of an archive over HTTP, each carrying its stored bytes, fetched ahead of whoever draws them.

    The parent draws its workers' batches from this, so the reads for the next batches overlap
    the conversion of this one and a worker never waits a round trip at the start of a task.
    Its length is the inputs' (batches are cut as from the list). ``limits`` says what the
    drawing waited on.
    """

    def __init__(self, archive: ZipArchive, items: list[Input], meter: Meter, window: Callable[[], int]) -> None:
        self.archive, self.items, self.meter, self.window = archive, items, meter, window
        self.limits = Limits()

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Input]:
        for item, data in self.archive._in_flight(self.items, self.meter, self.window, self.limits, ordered=False):
            yield replace(item, ref=data)


def _window(meter: Meter, least: int) -> Callable[[], int]:
    """Bytes to hold ahead: ``least``, and two round trips' worth of the link on top, at most ``WINDOW_MOST``."""
    return lambda: min(WINDOW_MOST, least + 2 * meter.round_trip_bytes)


def _span(run: list[Input]) -> Span:
    first: Member = run[0].ref
    return Span(first.offset, run[-1].ref.end, run, _too_large(first) if _oversize(first) else None)


def _from_span(span: Span) -> Iterator[tuple[Input, Packed | Exception]]:
    """Each member of a fetched span: its stored data, or why not (the span's own failure fails them all)."""
    failure = span.error if span.error is not None else span.data
    if isinstance(failure, Exception):
        yield from ((item, failure) for item in span.items)
        return
    body, at, done = _Bytes(memoryview(span.data)), span.start, 0
    try:
        for item in span.items:
            data, at = _take(body, item.ref, at)
            done += 1
            yield item, data
    except ReadError as err:
        yield from ((item, err) for item in span.items[done:])


@dataclass
class _Bytes:
    """A fetched range read front to back, as a ``Body``."""

    data: memoryview
    at: int = 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.at : self.at + n]
        self.at += len(piece)
        return bytes(piece)

    def close(self) -> None:
        """Nothing to let go of."""


def _unpacked(data: Packed | Exception) -> bytes | Exception:
    """A member's bytes from its stored data (inflated, CRC-32 checked), or why not."""
    if isinstance(data, Exception):
        return data
    try:
        return unpack(data.member, data.data)
    except ReadError as err:
        return err


def _too_large(member: Member) -> ReadError:
    return ReadError(f"member is {member.size} bytes, larger than any CT slice (limit {MAX_FILE_BYTES})")


def _take(body: Body, member: Member, at: int) -> tuple[Packed | Exception, int]:
    """One member's stored data (or why not) from a range positioned at ``at``; and the position after it.

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
    return Packed(member, data), at + skip + member.compressed


@dataclass(frozen=True)
class Reach:
    """How far one range may stretch: the widest gap worth fetching, and its length."""

    gap: int = RUN_GAP
    most: int = RUN_BYTES


def runs(items: Iterable[Input], reach: Callable[[], Reach] = Reach) -> Iterator[list[Input]]:
    """``items`` cut into runs of neighbouring members, each read as one range.

    A gap of ``RUN_GAP`` or less always joins (it costs less than any round trip); a wider one
    up to ``reach().gap`` (the bytes a round trip costs) joins while the run's dropped bytes
    stay within ``WASTE`` of those it keeps. ``reach`` is asked again at the start of each run,
    so it can follow a link measured as the run goes. A member too large to be a slice is a run
    of its own (and is never fetched).
    """
    run: list[Input] = []
    limit, dropped = reach(), 0
    for item in items:
        if run and not _joins(run, item.ref, limit, dropped):
            yield run
            run, limit, dropped = [], reach(), 0
        if run:
            dropped += item.ref.offset - run[-1].ref.end
        run.append(item)
    if run:
        yield run


def _joins(run: list[Input], member: Member, reach: Reach, dropped: int) -> bool:
    """Whether ``member`` can be read in the same range as ``run``, whose gaps add up to ``dropped`` bytes."""
    first, last = run[0].ref, run[-1].ref
    gap, length = member.offset - last.end, member.end - first.offset
    if gap < 0 or length > reach.most or _oversize(member) or _oversize(last):
        return False
    return gap <= RUN_GAP or (gap <= reach.gap and dropped + gap <= WASTE * (length - dropped - gap))


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

"""The zip format as ichprep reads it (PKWARE's APPNOTE.TXT 6.3): the directory, local headers, member data.

Written here rather than taken from ``zipfile`` because ``zipfile`` keeps a ~1 KB ``ZipInfo``
per member (760 MB for the competition's 750,000) and wants a seekable file, while ichprep
needs the directory read once, as compact records, from a file, an HTTP range or a stream.
What the competition's archive can hold is covered: stored and deflated members, zip64,
data descriptors, data prepended to the archive. Encrypted or otherwise compressed members
are failed rows, never a stopped run.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ichprep.convert.sources import inflate
from ichprep.convert.sources.base import ReadError

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
END = b"PK\x05\x06"
END64 = b"PK\x06\x06"
LOCATOR64 = b"PK\x06\x07"
DESCRIPTOR = b"PK\x07\x08"

END_RECORD = struct.Struct("<4s4H2LH")
LOCATOR64_RECORD = struct.Struct("<4sLQL")
END64_RECORD = struct.Struct("<4sQ2H2L4Q")
CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
ZIP64_EXTRA = 0x0001
FULL = 0xFFFFFFFF

TAIL = END_RECORD.size + 0xFFFF + LOCATOR64_RECORD.size + END64_RECORD.size
"""Bytes at the end of an archive that hold its end records whatever the length of its comment."""
PROBE = max(TAIL, 256 * 1024)
"""Bytes asked for first at the end of an archive: its end records and, for up to about 2,500 members, its whole
directory too, so that listing a sample or a test set over a link costs one round trip, not two. 256 KB cost less
than a round trip on any link of 6 MB/s or more at 40 ms."""

STORED, DEFLATED = 0, 8
ENCRYPTED, HAS_DESCRIPTOR, UTF8 = 0x1, 0x8, 0x800


FIELDS = struct.Struct("<QQQQLHH")
"""A member's numbers, packed: offset, end, compressed size, size, CRC-32, method, flags."""


def _field(index: int, doc: str) -> property:
    return property(lambda self: FIELDS.unpack(self.fields)[index], doc=doc)


@dataclass(frozen=True, slots=True)
class Member:
    """One member's directory entry: where its local record starts and ends, how its data is stored.

    ``end`` is where the next record (or the directory) begins, so a run of neighbouring
    members is one contiguous byte range, fetched in one request. The numbers are packed in
    one bytes object: as seven Python ints, 750,000 members would cost the parent 110 MB more.
    """

    name: str
    fields: bytes

    @classmethod
    def of(cls, name: str, offset: int, end: int, compressed: int, size: int, crc: int, method: int, flags: int) -> Member:
        return cls(name, FIELDS.pack(offset, end, compressed, size, crc, method, flags))

    offset = _field(0, "Where the member's local header starts.")
    end = _field(1, "Where the next local record (or the directory) starts.")
    compressed = _field(2, "Bytes of stored data.")
    size = _field(3, "Bytes once inflated.")
    crc = _field(4, "CRC-32 of the inflated bytes.")
    method = _field(5, "0 stored, 8 deflated.")
    flags = _field(6, "General purpose flags (1 encrypted, 8 data descriptor, 0x800 UTF-8 name).")


@dataclass(frozen=True)
class Directory:
    """Where the central directory lies, found from the end records."""

    offset: int
    size: int
    shift: int
    """Bytes prepended to the archive (a self-extractor): every recorded offset is off by this much."""


def find_directory(tail: bytes, size: int, read_at: Callable[[int, int], bytes]) -> Directory:
    """The central directory of an archive of ``size`` bytes whose last bytes are ``tail``.

    ``read_at(offset, length)`` fetches a zip64 end record that lies before the tail. Raises
    ``ValueError`` for anything that is not a single-volume zip archive.
    """
    start = size - len(tail)
    at = _end_record(tail)
    _, disk, disk_cd, _, _, cd_size, cd_offset, _ = END_RECORD.unpack_from(tail, at)
    cd_end = start + at
    locator = at - LOCATOR64_RECORD.size
    if locator >= 0 and tail[locator : locator + 4] == LOCATOR64:
        cd_end = start + locator - END64_RECORD.size
        if cd_end < 0:
            raise ValueError("zip64 end record missing")
        record = tail[locator - END64_RECORD.size : locator] if locator >= END64_RECORD.size else read_at(cd_end, END64_RECORD.size)
        if record[:4] != END64:
            raise ValueError("zip64 end record missing")
        _, _, _, _, disk, disk_cd, _, _, cd_size, cd_offset = END64_RECORD.unpack(record)
    elif FULL in (cd_size, cd_offset):
        raise ValueError("zip64 end records missing")
    if disk or disk_cd:
        raise ValueError("a multi-volume (split) archive")
    shift = cd_end - cd_size - cd_offset
    if shift < 0:
        raise ValueError("truncated: its directory lies past its end")
    return Directory(cd_offset + shift, cd_size, shift)


def _end_record(tail: bytes) -> int:
    """Where the end-of-central-directory record starts in ``tail`` (the last one whose comment fits)."""
    at = len(tail)
    while (at := tail.rfind(END, 0, at)) >= 0:
        if at + END_RECORD.size <= len(tail):
            comment = END_RECORD.unpack_from(tail, at)[7]
            if at + END_RECORD.size + comment <= len(tail):
                return at
    raise ValueError("no end-of-central-directory record (not a zip archive, or cut short)")


def members(chunks: Iterable[bytes], directory: Directory) -> list[Member]:
    """Every member of the directory, in the order of their local records, each with its ``end``.

    ``chunks`` is the directory's bytes in pieces of any size: it is parsed as it arrives, so
    the parent never holds the raw directory (80 MB for the competition) and its records at once.
    """
    names, numbers, offsets = [], [], array("q")
    for name, offset, packed in _entries(chunks):
        names.append(name)
        numbers.append(packed)
        offsets.append(offset)
    starts = np.frombuffer(offsets, dtype=np.int64) + directory.shift
    order = np.argsort(starts, kind="stable")
    starts = starts[order]
    ends = np.append(starts, directory.offset)[np.searchsorted(starts, starts, side="right")]
    found = []
    for k, start, end in zip(order.tolist(), starts.tolist(), ends.tolist()):
        found.append(Member(names[k], BOUNDS.pack(start, end) + numbers[k]))
        numbers[k] = None
    return found


BOUNDS = struct.Struct("<QQ")
NUMBERS = struct.Struct("<QQLHH")
"""Compressed size, size, CRC-32, method, flags: with BOUNDS (offset, end) before them, FIELDS."""
CENTRAL_FIELDS = struct.Struct("<4s4xHH4xLLLHHH8xL")
"""The central header's fields ichprep reads (signature, flags, method, CRC, sizes, name/extra/comment lengths, offset)."""


def _entries(chunks: Iterable[bytes]) -> Iterator[tuple[str, int, bytes]]:
    """(name, offset, packed NUMBERS) of each central directory record, parsed as its bytes arrive."""
    unpack = CENTRAL_FIELDS.unpack_from
    buf, pos = b"", 0
    for chunk in chunks:
        buf, pos = buf[pos:] + chunk, 0
        while len(buf) - pos >= CENTRAL_HEADER.size:
            sig, flags, method, crc, compressed, size, n_name, n_extra, n_comment, offset = unpack(buf, pos)
            if sig != CENTRAL:
                raise ValueError("bad central directory record")
            head = pos + CENTRAL_HEADER.size
            if head + n_name + n_extra + n_comment > len(buf):
                break
            name = member_name(buf[head : head + n_name], flags)
            if FULL in (compressed, size, offset):
                size, compressed, offset = zip64(buf[head + n_name : head + n_name + n_extra], size, compressed, offset)
            yield name, offset, NUMBERS.pack(compressed, size, crc, method, flags)
            pos = head + n_name + n_extra + n_comment
    if buf[pos:]:
        raise ValueError("its directory ends in the middle of a record")


def member_name(raw: bytes, flags: int) -> str:
    """A member's name: UTF-8 when flagged so, else code page 437 (ASCII, the usual case, decoded directly)."""
    return raw.decode("ascii") if raw.isascii() else raw.decode("utf-8" if flags & UTF8 else "cp437", errors="replace")


def extra_field(extra: bytes, tag: int) -> bytes | None:
    """The data of the extra field ``tag`` in a header's extra bytes, or None."""
    at = 0
    while at + 4 <= len(extra):
        found, length = struct.unpack_from("<2H", extra, at)
        if found == tag:
            return extra[at + 4 : at + 4 + length]
        at += 4 + length
    return None


def zip64(extra: bytes, size: int, compressed: int, offset: int = 0) -> tuple[int, int, int]:
    """Size, compressed size and offset, the saturated ones taken from the zip64 extra field (in that order)."""
    data = extra_field(extra, ZIP64_EXTRA)
    if data is None:
        raise ValueError("a zip64 member without its zip64 extra field")
    values = iter(struct.unpack_from(f"<{len(data) // 8}Q", data))
    try:
        size = next(values) if size == FULL else size
        compressed = next(values) if compressed == FULL else compressed
        offset = next(values) if offset == FULL else offset
    except StopIteration:
        raise ValueError("a zip64 extra field too short for its member") from None
    return size, compressed, offset


def local_skip(header: bytes, name: str) -> int:
    """The name and extra bytes that follow a member's 30-byte local header, before its data."""
    if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL:
        raise ReadError(f"no local header where the directory puts {name!r}")
    _, _, _, _, _, _, _, _, _, n_name, n_extra = LOCAL_HEADER.unpack(header)
    return n_name + n_extra


def unpack(member: Member, data: bytes) -> bytes:
    """A member's bytes from its stored data: inflated when deflated, its CRC-32 checked."""
    if member.flags & ENCRYPTED:
        raise ReadError(f"{member.name!r} is encrypted")
    if member.method == STORED:
        if len(data) != member.size:
            raise ReadError(f"stored member {member.name!r} holds {len(data)} bytes, not {member.size}")
        out = data
    elif member.method == DEFLATED:
        try:
            out = inflate.inflate(data, member.size)
        except ValueError as err:
            raise ReadError(f"{member.name!r}: {err}") from None
    else:
        raise ReadError(f"{member.name!r} uses compression method {member.method}; only stored and deflated are read")
    if inflate.crc32(out) != member.crc:
        raise ReadError(f"Bad CRC-32 for file {member.name!r}")
    return out

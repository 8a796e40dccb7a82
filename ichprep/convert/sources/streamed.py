"""A zip read once, front to back: standard input (``curl -sL URL | ichprep convert - OUT``), or a server that ignores ``Range``.

Nothing can be listed before it has been read, so the parent walks the local headers as the
bytes arrive and hands each wanted member's bytes to a worker inside its input; members not
wanted (other files, ids not asked for, ids already converted) are read and dropped. A member
with a data descriptor (sizes written after the data, as streaming zip writers do) is inflated
by the parent to find where it ends, and passed on inflated.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ichprep.convert.sources import inflate
from ichprep.convert.sources.base import MAX_FILE_BYTES, Input, ReadError, id_of
from ichprep.convert.sources.zipformat import (
    CENTRAL,
    DEFLATED,
    DESCRIPTOR,
    END,
    END64,
    FULL,
    HAS_DESCRIPTOR,
    LOCAL,
    LOCAL_HEADER,
    STORED,
    ZIP64_EXTRA,
    Member,
    extra_field,
    member_name,
    unpack,
    zip64,
)
from ichprep.errors import SourceError, StreamCutError

CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Packed:
    """A streamed member: its header fields and its data as stored (or already inflated, then ``STORED``)."""

    member: Member
    data: bytes


class Counted:
    """A binary file object (standard input) that counts the bytes read from it."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.fetched = raw, 0

    def read(self, n: int) -> bytes:
        data = self.raw.read(n)
        self.fetched += len(data)
        return data


@dataclass
class ZipStream:
    """The ``.dcm`` members of a zip that can only be read once, in order."""

    name: str
    stream: Any = field(default=None, repr=False)
    """What ``read(n)`` gives the zip's bytes and counts them in ``fetched`` (``Counted``, an HTTP
    ``Body``); the parent's alone, never pickled."""
    walked: bool = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "stream": None}

    @property
    def fetched(self) -> int:
        return self.stream.fetched if self.stream is not None else 0

    def for_workers(self) -> ZipStream:
        return ZipStream(self.name)

    def inputs(self, ids: Collection[str] | None = None) -> Iterator[Input]:
        """The wanted members as the stream delivers them, each holding its bytes; the stream can be walked once."""
        if self.stream is None or self.walked:
            raise SourceError(f"{self.name}: a stream can be read only once, by the process that opened it")
        self.walked = True
        return self._walk(_Reader(self.stream), set(ids) if ids is not None else None)

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        for item in items:
            if isinstance(item.ref, Exception):
                yield item, item.ref
                continue
            try:
                yield item, unpack(item.ref.member, item.ref.data)
            except ReadError as err:
                yield item, err

    def _walk(self, reader: _Reader, keep: set[str] | None) -> Iterator[Input]:
        """The wanted members; a stream that breaks before its first member is refused, after it the run stops resumably."""
        members = 0
        try:
            while True:
                offset = reader.at
                signature = reader.some(4)
                signature += reader.exactly(4 - len(signature)) if signature else b""
                if signature in (CENTRAL, END, END64):
                    reader.drain()
                    return
                if signature != LOCAL:
                    if not signature and offset:
                        raise ReadError(f"the stream ends at byte {offset}, before the zip's directory: cut short")
                    where = "empty" if not signature else f"no local header at byte {offset}"
                    raise SourceError(f"{self.name}: not a zip archive ({where})")
                found = self._member(reader, offset, keep)
                members += 1
                if found is not None:
                    yield found
        except ReadError as err:
            raise (StreamCutError if members else SourceError)(f"{self.name}: {err}") from None

    def _member(self, reader: _Reader, offset: int, keep: set[str] | None) -> Input | None:
        """The member whose local header starts at ``offset``, read past its data: an input if it is wanted."""
        _, _, flags, method, _, _, crc, compressed, size, n_name, n_extra = LOCAL_HEADER.unpack(LOCAL + reader.exactly(26))
        name = member_name(reader.exactly(n_name), flags)
        extra = reader.exactly(n_extra)
        wide = extra_field(extra, ZIP64_EXTRA) is not None
        if FULL in (compressed, size):
            try:
                size, compressed, _ = zip64(extra, size, compressed)
            except ValueError as err:
                raise ReadError(f"{name!r}: {err}") from None
        image_id = id_of(name)
        wanted = not name.endswith("/") and name.lower().endswith(".dcm") and (keep is None or image_id in keep)
        if flags & HAS_DESCRIPTOR:
            if method != DEFLATED:
                raise SourceError(f"{self.name}: {name!r} is stored with its size after its data, so its end cannot be "
                                  "found in a stream; give the zip as a file or URL instead")
            data, size = _inflate_through(reader, name, wanted)
            crc = _descriptor(reader, name, wide, size)
            member = Member.of(name, offset, reader.at, size, size, crc, STORED, flags)
        else:
            if max(compressed, size) > MAX_FILE_BYTES:
                reader.skip(compressed)
                data = ReadError(f"member is {size} bytes, larger than any CT slice (limit {MAX_FILE_BYTES})")
            else:
                data = reader.exactly(compressed) if wanted else reader.skip(compressed)
            member = Member.of(name, offset, reader.at, compressed, size, crc, method, flags)
        if not wanted:
            return None
        if isinstance(data, Exception):
            return Input(image_id, self.name, data, name)
        return Input(image_id, self.name, Packed(member, data), name)


def _inflate_through(reader: _Reader, name: str, keep: bool) -> tuple[bytes | Exception | None, int]:
    """Inflate a member whose size comes after it, to find its end: its bytes (when kept) and its size.

    Output is taken a megabyte at a time, so a member that inflates without bound costs no memory.
    """
    inflater, pieces, size = inflate.inflater(), [], 0
    while not inflater.eof:
        data = reader.some(CHUNK)
        if not data:
            raise ReadError(f"the stream ends inside {name!r}")
        while data and not inflater.eof:
            try:
                piece = inflater.decompress(data, CHUNK)
            except inflate.error as err:
                raise ReadError(f"{name!r} is not deflate data ({err}), so its end cannot be found") from None
            data = inflater.unconsumed_tail
            size += len(piece)
            if keep and size <= MAX_FILE_BYTES:
                pieces.append(piece)
        reader.unread(data + inflater.unused_data)
    if size > MAX_FILE_BYTES:
        return (ReadError(f"member is {size} bytes, larger than any CT slice (limit {MAX_FILE_BYTES})") if keep else None), size
    return (b"".join(pieces) if keep else None), size


def _descriptor(reader: _Reader, name: str, wide: bool, size: int) -> int:
    """The CRC-32 from the data descriptor after a member (signature optional; 8-byte sizes with zip64)."""
    head = reader.exactly(4)
    crc = struct.unpack("<L", reader.exactly(4) if head == DESCRIPTOR else head)[0]
    recorded = struct.unpack("<QQ" if wide else "<LL", reader.exactly(16 if wide else 8))[1]
    if recorded != (size if wide else size & FULL):
        raise ReadError(f"the data descriptor of {name!r} gives {recorded} bytes, its data {size}")
    return crc


class _Reader:
    """The stream with a cursor and room to push bytes back."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.pending, self.at = raw, b"", 0

    def some(self, n: int) -> bytes:
        """Up to ``n`` bytes; empty only at the end of the stream."""
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
        else:
            data = self.raw.read(n)
        self.at += len(data)
        return data

    def exactly(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            data = self.some(min(n - got, CHUNK))
            if not data:
                raise ReadError(f"the stream ends {n - got} bytes early, at byte {self.at}")
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n > 0:
            n -= len(self.exactly(min(n, CHUNK)))

    def unread(self, data: bytes) -> None:
        self.pending = data + self.pending
        self.at -= len(data)

    def drain(self) -> None:
        """Read to the end, so the program writing the stream (curl) finishes without a broken pipe."""
        while self.some(CHUNK):
            pass

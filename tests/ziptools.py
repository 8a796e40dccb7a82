"""Zip archives for the source tests, in every layout a writer may choose; not a test module.

``build`` writes the same members as a plain zip, with a comment, with bytes prepended (a
self-extractor), as zip64, or as a streaming writer does (data descriptors, sizes after the
data). ``tiny_zip`` writes an archive of many tiny stored members straight from ``struct``, in
seconds even for the competition's 750,000 members, where ``zipfile`` takes minutes.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

LAYOUTS = ("plain", "comment", "prepended", "zip64", "descriptors")


class _Unseekable(io.RawIOBase):
    """A write-only stream without seek, so ``zipfile`` writes data descriptors as a streaming writer would."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        return len(data)


def build(members: dict[str, bytes], layout: str = "plain", method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``members`` (name -> bytes) in ``layout``, one of LAYOUTS."""
    if layout == "descriptors":
        sink = _Unseekable()
        with zipfile.ZipFile(sink, "w", method) as zf:
            for name, data in members.items():
                with zf.open(name, "w") as fh:
                    fh.write(data)
        return bytes(sink.buffer)
    out = io.BytesIO()
    limit = zipfile.ZIP64_LIMIT
    zipfile.ZIP64_LIMIT = 0 if layout == "zip64" else limit
    try:
        with zipfile.ZipFile(out, "w", method) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=(2019, 9, 1, 0, 0, 0))
                info.compress_type = method
                with zf.open(info, "w", force_zip64=layout == "zip64") as fh:
                    fh.write(data)
            if layout == "comment":
                zf.comment = b"a comment after the directory, " * 100
    finally:
        zipfile.ZIP64_LIMIT = limit
    data = out.getvalue()
    return b"#!/bin/sh\nexit 0\n" * 64 + data if layout == "prepended" else data


def tiny_zip(path: Path, n: int, folder: str = "stage_2_train/", payload: Callable[[int], bytes] | None = None) -> None:
    """``n`` stored members ``folder/ID_<9 hex>.dcm``, with their central directory (zip64 past 65,535).

    Member ``k`` holds ``payload(k)``, by default its number in 4 bytes.
    """
    locals_, centrals, offset = [], [], 0
    for k in range(n):
        name = f"{folder}ID_{k:09x}.dcm".encode()
        data = payload(k) if payload is not None else struct.pack("<L", k)
        crc = zlib.crc32(data)
        locals_.append(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0) + name + data)
        centrals.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name),
                                    0, 0, 0, 0, 0, offset) + name)
        offset += 30 + len(name) + len(data)
    directory = b"".join(centrals)
    with open(path, "wb") as fh:
        fh.write(b"".join(locals_))
        fh.write(directory)
        count = min(n, 0xFFFF)
        if n > 0xFFFF:
            fh.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(directory), offset))
            fh.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1))
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0))

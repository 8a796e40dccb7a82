"""The data elements of a plain little-endian DICOM file, read straight from its bytes.

Nearly every file of the competition is the same simple thing: a preamble, a file meta group,
twenty-odd elements in implicit or explicit VR little endian, then 512 KB of native pixels.
pydicom parses such a file into an object per element, which with the header's conversion
costs more than rendering it; this reader walks the bytes once and hands back every element's
undecoded value and where the pixels are, for ``header.flatten_elements`` and the decoder.

It accepts only what it fully understands and returns None for anything else: no preamble,
another transfer syntax, an explicit VR it does not know or one that disagrees with the
transfer syntax, an undefined length (encapsulated pixels, sequences), an element running past
the end of the file, elements out of order or repeated, command or file meta elements in the
data set. The caller then reads the file with pydicom, so an unusual file gets exactly the
treatment it always had; the tests check both readers agree on every test file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

IMPLICIT_LE = b"1.2.840.10008.1.2"
EXPLICIT_LE = b"1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010
TRANSFER_SYNTAX = 0x00020010
UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
"""Explicit VRs with two reserved bytes and a 32-bit length (PS3.5 7.1.2)."""
_VRS = _LONG_VRS | frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_EXPLICIT = struct.Struct("<HH2sH")
_LENGTH = struct.Struct("<L")

Element = tuple[int, "str | None", bytes]
"""(tag, VR as written in the file or None in implicit VR, undecoded value)."""


@dataclass(frozen=True)
class Elements:
    """A data set's elements in ascending tag order, without Pixel Data, and where its pixels are."""

    items: list[Element]
    pixels: tuple[int, int] | None
    """(offset, length) of Pixel Data's value in the file bytes; None without Pixel Data."""
    implicit: bool


def read(data: bytes) -> Elements | None:
    """The elements of a native little-endian file with preamble and file meta, or None (see the module)."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    meta = _walk(data, 132, implicit=False, meta=True)
    if meta is None:
        return None
    found, start = meta
    syntax = next((data[at : at + n].rstrip(b"\0 ") for tag, _, at, n in found if tag == TRANSFER_SYNTAX), None)
    if syntax not in (IMPLICIT_LE, EXPLICIT_LE):
        return None
    implicit = syntax == IMPLICIT_LE
    if start + 6 <= len(data) and _looks_implicit(data[start + 4 : start + 6]) != implicit:
        return None
    walked = _walk(data, start, implicit, meta=False)
    if walked is None:
        return None
    items: list[Element] = []
    pixels = None
    previous = 0x0002FFFF
    for tag, vr, at, length in walked[0]:
        if tag <= previous or tag >> 16 == 0xFFFE:
            return None
        previous = tag
        if tag == PIXEL_DATA:
            pixels = (at, length)
        else:
            items.append((tag, vr, data[at : at + length]))
    return Elements(items, pixels, implicit)


def _looks_implicit(vr: bytes) -> bool:
    """pydicom's test of the first element: two capital letters where an explicit VR would be."""
    return not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


def _walk(data: bytes, pos: int, implicit: bool, meta: bool) -> tuple[list[tuple[int, str | None, int, int]], int] | None:
    """(tag, VR, value offset, value length) of each element from ``pos``, and where the walk stopped.

    The file meta group (``meta``) ends at the first element of another group; a data set at the
    end of the file. None for anything the module's rules leave to pydicom.
    """
    end = len(data)
    found: list[tuple[int, str | None, int, int]] = []
    while pos < end:
        if pos + 8 > end:
            return None
        group, element, vr, length = _EXPLICIT.unpack_from(data, pos)
        if meta and group != 2:
            break
        if implicit:
            length = _LENGTH.unpack_from(data, pos + 4)[0]
            name = None
            pos += 8
        elif vr in _LONG_VRS:
            if pos + 12 > end:
                return None
            length = _LENGTH.unpack_from(data, pos + 8)[0]
            name = vr.decode()
            pos += 12
        elif vr in _VRS:
            name = vr.decode()
            pos += 8
        else:
            return None
        if length == UNDEFINED_LENGTH or pos + length > end:
            return None
        found.append((group << 16 | element, name, pos, length))
        pos += length
    return found, pos

"""Inflate and CRC-32 for zip members: ISA-L (the ``isal`` package) when installed, else zlib.

Inflating a deflated 512 KB slice with zlib costs more than everything else done to it, and
ISA-L's inflate is about 1.5x faster on the same bytes and its CRC-32 several times faster
(``benchmarks/inflate_speed.py``). Both produce identical bytes, so the choice never changes an
image; zlib is always there as the fallback.
"""

from __future__ import annotations

try:
    from isal import isal_zlib as _zlib

    BACKEND = "isal"
except ImportError:  # no isal wheel for this platform
    import zlib as _zlib

    BACKEND = "zlib"

RAW = -15
"""wbits of a raw deflate stream, the form zip members are stored in."""


def crc32(data: bytes, value: int = 0) -> int:
    """The CRC-32 a zip directory records for ``data`` (continued from ``value``, for data in pieces)."""
    return _zlib.crc32(data, value) & 0xFFFFFFFF


def inflate(data: bytes, size: int) -> bytes:
    """The raw deflate stream ``data``, inflated to exactly ``size`` bytes.

    Output is capped at ``size + 1`` bytes, so a member that inflates to far more than its
    directory entry claims (a zip bomb) costs no memory; ``ValueError`` says what was wrong.
    """
    inflater = _zlib.decompressobj(RAW)
    try:
        out = inflater.decompress(data, size + 1)
    except _zlib.error as err:
        raise ValueError(f"corrupt deflate data ({err})") from None
    if len(out) != size or not inflater.eof:
        raise ValueError(f"deflate data gives {'more' if len(out) > size else 'fewer'} bytes than the {size} recorded")
    return out


def inflater():
    """An incremental raw-deflate inflater (``decompress``, ``eof``, ``unused_data``) for a stream."""
    return _zlib.decompressobj(RAW)


error = _zlib.error
"""What the inflater raises on corrupt data."""

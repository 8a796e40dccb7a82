"""The faster inflate (ISA-L) gives zlib's bytes, and zlib takes over where isal is missing."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest

from ichprep.convert.sources import inflate


@pytest.fixture
def slice_bytes(make_ct) -> bytes:
    """A 512 x 512 slice's file bytes, about the size of the competition's."""
    rng = np.random.default_rng(0)
    return make_ct((rng.normal(1000, 200, (512, 512)).clip(0, 4095)).astype(np.uint16))


def deflated(data: bytes, level: int = 6) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def test_isal_is_used_where_it_is_installed():
    pytest.importorskip("isal")
    assert inflate.BACKEND == "isal"


@pytest.mark.parametrize("level", [1, 6, 9])
def test_inflate_and_crc_equal_zlibs(slice_bytes, level):
    assert inflate.inflate(deflated(slice_bytes, level), len(slice_bytes)) == slice_bytes
    assert inflate.crc32(slice_bytes) == zlib.crc32(slice_bytes)


def test_a_size_that_does_not_match_is_a_value_error(slice_bytes):
    data = deflated(slice_bytes)
    for size, words in [(len(slice_bytes) - 1, "more bytes"), (len(slice_bytes) + 1, "fewer bytes")]:
        with pytest.raises(ValueError, match=words):
            inflate.inflate(data, size)
    with pytest.raises(ValueError, match="corrupt deflate data"):
        inflate.inflate(b"\xff" * 100, 1000)


def test_zlib_takes_over_without_isal():
    code = ("import sys, zlib; sys.modules['isal'] = None\n"
            "from ichprep.convert.sources import inflate\n"
            "c = zlib.compressobj(6, zlib.DEFLATED, -15); data = b'ichprep' * 10000\n"
            "assert inflate.inflate(c.compress(data) + c.flush(), len(data)) == data\n"
            "assert inflate.crc32(data) == zlib.crc32(data)\n"
            "print(inflate.BACKEND)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "zlib"

"""Property and fuzz tests of the reader: whatever the bytes, a file is converted or fails in one line.

Two sources of hostile files: hypothesis writes header elements with arbitrary values (and
wrong VRs) around a valid slice, and a seeded mutator flips, cuts and inserts bytes in the
real RSNA sample slices. Nothing may escape ``convert_one``, and memory must stay bounded.
"""

from __future__ import annotations

import resource
import struct
from pathlib import Path

import badinput
import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SIZE = 32
FUZZ_CASES = 300
MAX_RSS_GROWTH_MB = 200

US_TAGS = {
    "Rows": 0x00280010,
    "Columns": 0x00280011,
    "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101,
    "PixelRepresentation": 0x00280103,
    "SamplesPerPixel": 0x00280002,
}
DS_TAGS = {"RescaleIntercept": 0x00281052, "RescaleSlope": 0x00281053, "WindowCenter": 0x00281050, "WindowWidth": 0x00281051}
CS_TAGS = {"Modality": 0x00080060, "PhotometricInterpretation": 0x00280004}

decimal_text = st.one_of(
    st.sampled_from(["-1024", "0", "1", "-1000", "1e400", "-1e400", "NaN", "inf", "", " ", "1\\2", "40\\40", "x", "0.0", "-0", "1e-320"]),
    st.from_regex(r"[-+0-9.eE\\ ]{0,16}", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f)[:16]),
)
unsigned_value = st.one_of(
    st.integers(0, 65535).map(lambda v: ("US", struct.pack("<H", v))),
    st.sampled_from([0, 1, 8, 12, 16, 32, 64, SIZE, 8192, 8193, 65535]).map(lambda v: ("US", struct.pack("<H", v))),
    st.integers(-40000, 40000).map(lambda v: ("IS", str(v).encode())),
    st.integers(-32768, 32767).map(lambda v: ("SS", struct.pack("<h", v))),
    st.from_regex(r"[ -~]{0,12}", fullmatch=True).map(lambda t: ("IS", t.encode())),
)
code_text = st.one_of(
    st.sampled_from(["CT", "MR", "", "ct", "MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR"]),
    st.from_regex(r"[A-Z0-9 _]{0,16}", fullmatch=True),
)


def element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit-VR little-endian element with a 16-bit length (every VR used here has one)."""
    if len(value) % 2:
        value += b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def slice_with(elements: dict[int, tuple[str, bytes]], pixel_bytes: int) -> bytes:
    """A valid slice with ``elements`` replaced by raw ones and its pixel data cut or padded to ``pixel_bytes``."""
    ds = badinput.ct_dataset()
    for tag in elements:
        del ds[tag]
    data = ds.PixelData
    ds.PixelData = (data * (1 + pixel_bytes // len(data)))[:pixel_bytes]
    raw = badinput.encode(ds)
    marker = raw.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    return raw[:marker] + b"".join(element(tag, vr, value) for tag, (vr, value) in sorted(elements.items())) + raw[marker:]


def check_row(row: dict, out: Path) -> None:
    """The contract: status ok with a decodable image, or failed with a one-line reason."""
    assert row["status"] in ("ok", "failed")
    if row["status"] == "failed":
        assert isinstance(row["error"], str) and row["error"] and "\n" not in row["error"] and len(row["error"]) <= 400
    else:
        image = cv2.imread(str(out / f"{row['id']}.png"), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (SIZE, SIZE, 3)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    us=st.dictionaries(st.sampled_from(sorted(US_TAGS)), unsigned_value, max_size=4),
    ds=st.dictionaries(st.sampled_from(sorted(DS_TAGS)), decimal_text, max_size=4),
    cs=st.dictionaries(st.sampled_from(sorted(CS_TAGS)), code_text, max_size=2),
    pixel_bytes=st.sampled_from([0, 1, 2, SIZE * SIZE, SIZE * SIZE * 2, SIZE * SIZE * 2 + 2, SIZE * SIZE * 4, SIZE * SIZE * 8]),
)
def test_any_header_values_convert_or_fail_in_one_line(tmp_path: Path, us: dict, ds: dict, cs: dict, pixel_bytes: int) -> None:
    elements = {US_TAGS[k]: v for k, v in us.items()}
    elements |= {DS_TAGS[k]: ("DS", v.encode()) for k, v in ds.items()}
    elements |= {CS_TAGS[k]: ("CS", v.encode()) for k, v in cs.items()}
    path = tmp_path / "case.dcm"
    path.write_bytes(slice_with(elements, pixel_bytes))

    row = badinput.convert_file(path, SIZE)

    check_row(row, tmp_path)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Byte flips (mostly in the header, where they matter), a truncation, or an insertion."""
    kind = rng.integers(3)
    buf = bytearray(data)
    if kind == 0:
        header_end = min(len(buf), 1500)
        for _ in range(int(rng.integers(1, 20))):
            at = int(rng.integers(header_end)) if rng.random() < 0.9 else int(rng.integers(len(buf)))
            buf[at] = int(rng.integers(256))
        return bytes(buf)
    if kind == 1:
        return bytes(buf[: int(rng.integers(len(buf)))])
    at = int(rng.integers(min(len(buf), 1500)))
    return bytes(buf[:at]) + rng.bytes(int(rng.integers(1, 64))) + bytes(buf[at:])


def test_mutated_real_slices_never_escape_convert_one_and_memory_stays_bounded(tmp_path: Path, real_files: list[Path]) -> None:
    rng = np.random.default_rng(20191)
    originals = [p.read_bytes() for p in real_files]
    path = tmp_path / "fuzz.dcm"
    path.write_bytes(originals[0])
    badinput.convert_file(path, SIZE)  # warm-up: lookup tables and imports are not growth
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {"ok": 0, "failed": 0}

    for _ in range(FUZZ_CASES):
        path.write_bytes(mutate(originals[int(rng.integers(len(originals)))], rng))
        (tmp_path / "fuzz.png").unlink(missing_ok=True)
        row = badinput.convert_file(path, SIZE)
        check_row(row, tmp_path)
        outcomes[row["status"]] += 1

    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert growth_mb < MAX_RSS_GROWTH_MB
    assert outcomes["ok"] > 0 and outcomes["failed"] > 0, outcomes

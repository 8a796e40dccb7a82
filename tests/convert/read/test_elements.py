"""The fast reader of plain little-endian files against pydicom, on every kind of test file.

``dicom.read`` takes the fast road (``elements`` + ``header.flatten_elements`` + a zero-copy view
of the pixels) for the competition's files and pydicom's road (``dicom.parse`` -> ``flatten`` and
``decode``) for everything else. On every file both must give the same header row and the same
outcome: pixels equal to pydicom's own ``pixel_array`` (dtype included) with the same rescale,
or the same one-line reason. The tests also check which road each file took, so they fail if
the fast road silently stops being used.
"""

from __future__ import annotations

import io
import struct

import badinput
import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)
from real_manifest import RSNA

from ichprep.convert.read import dicom, elements
from ichprep.convert.read.dicom import DicomError
from ichprep.convert.read.header import COMMON_TAGS

RNG = np.random.default_rng(3)
U12 = RNG.integers(0, 4096, (40, 48)).astype(np.uint16)
S16 = RNG.integers(-2000, 3000, (40, 48)).astype(np.int16)

GENERATED = {
    "uint16 BitsStored 12": (U12, dict(bits_stored=12)),
    "uint16 BitsStored 12, intercept -1000": (U12, dict(bits_stored=12, intercept=-1000.0)),
    "signed-as-unsigned quirk": (U12, dict(bits_stored=12, intercept=0.0)),
    "int16 BitsStored 16": (S16, dict(intercept=0.0)),
    "int16 BitsStored 12": ((S16 // 2).astype(np.int16), dict(bits_stored=12)),
    "slope 0.5": (U12, dict(bits_stored=12, slope=0.5, intercept=-512.0)),
    "implicit VR": (S16, dict(syntax=ImplicitVRLittleEndian)),
    "garbage high bits, unsigned": (U12 | np.uint16(0xA000), dict(bits_stored=12)),
    "garbage high bits, signed": ((U12 | np.uint16(0x5000)).view(np.int16), dict(bits_stored=12, pixel_representation=1)),
    "no preamble": (U12, dict(bits_stored=12, preamble=False)),
    "RLE Lossless": (U12, dict(bits_stored=12, syntax=RLELossless)),
    "deflated explicit VR": (U12, dict(bits_stored=12, syntax=DeflatedExplicitVRLittleEndian)),
    "explicit VR big endian": (S16, dict(syntax=ExplicitVRBigEndian)),
    "rows smaller than the data": (U12, dict(bits_stored=12, rows=20)),
    "rows larger than the data": (U12, dict(bits_stored=12, rows=80)),
    "no pixel data": (U12, dict(bits_stored=12, with_pixels=False)),
}
SLOW_KINDS = {"no preamble", "RLE Lossless", "deflated explicit VR", "explicit VR big endian"}
"""The generated kinds the fast road must leave to pydicom: everything else is read by it."""


def reason(err: Exception) -> str:
    """What the manifest would record: a DicomError's reason, or any other exception's type and text."""
    return str(err) if isinstance(err, DicomError) else f"{type(err).__name__}: {err}"


def pydicom_road(data: bytes) -> tuple[dict | None, dicom.Slice | str]:
    """(header row, slice or reason) the way pydicom reads the file."""
    try:
        ds = dicom.parse(data)
    except Exception as err:
        return None, reason(err)
    header = dicom.read_header(ds)
    try:
        return header, dicom.decode(ds)
    except Exception as err:
        return header, reason(err)


def fast_road(data: bytes) -> tuple[dicom.Read | None, dict | None, dicom.Slice | str]:
    """(the read, its header row, slice or reason) the way ``dicom.read`` reads the file."""
    try:
        read = dicom.read(data)
    except Exception as err:
        return None, None, reason(err)
    try:
        return read, read.header, read.decode()
    except Exception as err:
        return read, read.header, reason(err)


def pixel_array(data: bytes) -> np.ndarray:
    """pydicom's own pixels of the one frame the header declares.

    A file without file meta is implicit VR little endian, as pydicom read it; bytes beyond the
    declared frame (Rows smaller than the data) are ignored, as both roads ignore them.
    """
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.pixel_array_options(allow_excess_frames=False)
    return ds.pixel_array


def assert_same_row(row: dict | None, expected: dict | None, name: str) -> None:
    """Same columns, same values of the same types (a NaN equals a NaN)."""
    assert (row is None) == (expected is None), name
    if row is None:
        return
    assert list(row) == list(expected), name
    for column, value in expected.items():
        got = row[column]
        assert type(got) is type(value), (name, column, got, value)
        assert got == value or value != value and got != got, (name, column, got, value)


def assert_both_roads_agree(data: bytes, name: str = "", independent: bool = True) -> dicom.Read | None:
    """Same header, same pixels (equal to pydicom's ``pixel_array`` when ``independent``) and rescale, or the same reason.

    Damaged files may have pixels pydicom's own pipeline refuses (an unknown photometric
    interpretation, which the windows ignore): there only the two roads are compared.
    """
    read, header, outcome = fast_road(data)
    expected_header, expected = pydicom_road(data)
    assert_same_row(header, expected_header, name)
    if isinstance(expected, str):
        assert outcome == expected, name
        return read
    assert isinstance(outcome, dicom.Slice), (name, outcome)
    assert outcome.raw.dtype == expected.raw.dtype and outcome.raw.shape == expected.raw.shape, name
    np.testing.assert_array_equal(outcome.raw, expected.raw, err_msg=name)
    if independent:
        np.testing.assert_array_equal(outcome.raw, pixel_array(data), err_msg=name)
    assert (outcome.slope, outcome.intercept, outcome.fix) == (expected.slope, expected.intercept, expected.fix), name
    return read


def test_real_files_take_the_fast_road_and_agree_with_pydicom(real_files):
    for path in real_files:
        read = assert_both_roads_agree(path.read_bytes(), path.name)
        assert read.found is not None, path.name


def test_ct_small_takes_the_fast_road_and_agrees_with_pydicom(ct_small):
    read = assert_both_roads_agree(ct_small.read_bytes())
    assert read.found is not None
    assert read.header["ImageType2"] == "AXIAL" and "OtherPatientIDsSequence" not in read.header


@pytest.mark.parametrize("kind", GENERATED)
def test_generated_kinds_agree_with_pydicom_and_unusual_ones_go_to_pydicom(make_ct, kind):
    raw, header = GENERATED[kind]
    read = assert_both_roads_agree(make_ct(raw, **header), kind)
    assert (read.found is None) == (kind in SLOW_KINDS)


@pytest.mark.parametrize("case", badinput.CASES, ids=lambda c: c.name)
def test_bad_input_cases_keep_their_outcome_and_reason(case):
    data = case.build()
    _, _, outcome = fast_road(data)
    assert_both_roads_agree(data, case.name)
    if case.outcome == "ok":
        assert isinstance(outcome, dicom.Slice), (case.name, outcome)
    else:
        assert isinstance(outcome, str) and case.reason in outcome, (case.name, outcome)


def test_phantoms_with_every_quirk_agree_with_pydicom(tmp_path):
    from ichprep.synth import IMAGES_DIR, generate

    generate(tmp_path, n=24, seed=1, size=64)
    files = sorted((tmp_path / IMAGES_DIR).glob("*.dcm"))
    reads = [assert_both_roads_agree(path.read_bytes(), path.name) for path in files]
    assert sum(read.found is not None for read in reads) >= len(files) - 6


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """A few bytes of the header flipped, the file cut, or bytes inserted in the header."""
    kind = rng.integers(3)
    buf = bytearray(data)
    header_end = min(len(buf), 1200)
    if kind == 0:
        for _ in range(int(rng.integers(1, 6))):
            buf[int(rng.integers(header_end))] = int(rng.integers(256))
        return bytes(buf)
    if kind == 1:
        return bytes(buf[: int(rng.integers(len(buf)))])
    at = int(rng.integers(header_end))
    return bytes(buf[:at]) + rng.bytes(int(rng.integers(1, 16))) + bytes(buf[at:])


def test_mutated_files_agree_with_pydicom(make_ct, ct_small):
    """Damaged headers are where two readers part ways; 400 seeded mutations must not find a difference."""
    rng = np.random.default_rng(2019)
    originals = [make_ct(U12, bits_stored=12), make_ct(S16, syntax=ImplicitVRLittleEndian), ct_small.read_bytes()]
    originals += [p.read_bytes() for p in sorted(RSNA.glob("stage_2_*_images/*.dcm"))[:4]]
    fast = 0
    for k in range(400):
        read = assert_both_roads_agree(mutate(originals[k % len(originals)], rng), f"mutation {k}", independent=False)
        fast += read is not None and read.found is not None
    assert fast >= 40, fast


def test_the_fast_road_refuses_what_it_does_not_fully_understand(make_ct):
    data = make_ct(U12, bits_stored=12)
    marker = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    undefined = data[: marker + 8] + struct.pack("<I", 0xFFFFFFFF) + data[marker + 12 :]
    past_the_end = data[: marker + 8] + struct.pack("<I", len(data)) + data[marker + 12 :]
    unknown_vr = data[:marker] + struct.pack("<HH2sH", 0x0010, 0x0010, b"ZZ", 2) + b"ab" + data[marker:]
    twice = data[:marker] + struct.pack("<HH2sH", 0x0028, 0x0010, b"US", 2) + b"\x10\x00" + data[marker:]
    for damaged in (undefined, past_the_end, unknown_vr, twice, data[:131], data[128:]):
        assert elements.read(damaged) is None
    assert elements.read(data) is not None


def test_common_tags_are_pydicoms_dictionary_entries():
    for tag, (vr, keyword) in COMMON_TAGS.items():
        assert (vr, keyword) == (dictionary_VR(tag), keyword_for_tag(tag)), hex(tag)


def test_a_read_keeps_its_file_bytes_and_the_pixels_are_a_view_of_them(make_ct):
    data = make_ct(U12, bits_stored=12)
    read = dicom.read(data)
    raw = read.decode().raw
    assert raw.base is not None and not raw.flags.writeable
    assert np.shares_memory(raw, np.frombuffer(read.data, np.uint8))


def test_sop_instance_uid_reaches_the_header_on_the_fast_road(make_ct):
    read = dicom.read(make_ct(U12, bits_stored=12, sop="1.2.3.44"))
    assert read.found is not None and read.header["SOPInstanceUID"] == "1.2.3.44"

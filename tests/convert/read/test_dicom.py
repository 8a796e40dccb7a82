"""Reading one DICOM: parsing, decoding to stored pixels, the HU mapping with the header fix, pixel statistics."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from ichprep.convert.read import dicom
from ichprep.convert.read.dicom import DicomError

RNG = np.random.default_rng(7)
U12 = RNG.integers(0, 4096, (64, 64)).astype(np.uint16)
S16 = RNG.integers(-2000, 3000, (64, 64)).astype(np.int16)
S12 = RNG.integers(-2048, 2048, (48, 40)).astype(np.int16)

GENERATED = {
    "uint16 BitsStored 12, intercept -1024": (U12, dict(bits_stored=12, intercept=-1024.0)),
    "uint16 BitsStored 12, intercept -1000": (U12, dict(bits_stored=12, intercept=-1000.0)),
    "int16 BitsStored 16": (S16, dict(intercept=0.0)),
    "signed-as-unsigned quirk, intercept 0": (U12, dict(bits_stored=12, intercept=0.0)),
    "int16 BitsStored 12, non-square": (S12, dict(bits_stored=12, intercept=-1024.0)),
    "RLE Lossless": (U12, dict(bits_stored=12, syntax=RLELossless)),
    "RLE Lossless signed": (S16, dict(syntax=RLELossless, intercept=0.0)),
    "implicit VR": (S16, dict(syntax=ImplicitVRLittleEndian)),
    "slope 0.5": (U12, dict(bits_stored=12, slope=0.5, intercept=-512.0)),
    "deflated explicit VR": (U12, dict(bits_stored=12, syntax=DeflatedExplicitVRLittleEndian)),
    "explicit VR big endian": (S16, dict(intercept=0.0, syntax=ExplicitVRBigEndian)),
}


def pydicom_pixels(data: bytes) -> np.ndarray:
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    return pydicom.dcmread(io.BytesIO(data)).pixel_array


def reference_hu(raw: np.ndarray, slope: float, intercept: float, fix: bool) -> np.ndarray:
    """Spec §3.2 in float32: raw * slope + intercept, or ((raw + 1000) mod 4096) - 1000 for a fixed file."""
    if fix:
        return (np.mod(raw.astype(np.int64) + 1000, 4096) - 1000).astype(np.float32)
    return raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def reference_stats(raw: np.ndarray, slope: float, intercept: float) -> dict[str, float]:
    values = raw.astype(np.float64)
    hu = values * slope + intercept
    return {
        "img_min": values.min(),
        "img_max": values.max(),
        "img_mean": values.mean(),
        "img_std": values.std(ddof=0),
        "img_pct_window": np.mean((hu > 0) & (hu < 80)),
    }


def test_real_files_decode_to_pydicoms_pixel_array(real_files):
    for path in real_files:
        data = path.read_bytes()
        sl = dicom.decode(dicom.parse(data))
        expected = pydicom_pixels(data)
        assert sl.raw.dtype == expected.dtype, path.name
        np.testing.assert_array_equal(sl.raw, expected, err_msg=path.name)
        assert not sl.fix


@pytest.mark.parametrize("kind", GENERATED)
def test_generated_slices_decode_to_pydicoms_pixel_array_and_the_stored_values(make_ct, kind):
    raw, header = GENERATED[kind]
    data = make_ct(raw, **header)
    sl = dicom.decode(dicom.parse(data))
    np.testing.assert_array_equal(sl.raw, pydicom_pixels(data))
    np.testing.assert_array_equal(sl.raw, raw)
    assert (sl.slope, sl.intercept) == (header.get("slope", 1.0), header.get("intercept", -1024.0))


def test_ct_small_decodes_to_pydicoms_pixel_array(ct_small):
    data = ct_small.read_bytes()
    sl = dicom.decode(dicom.parse(data))
    np.testing.assert_array_equal(sl.raw, pydicom_pixels(data))
    assert sl.intercept == -1024 and not sl.fix


def test_file_without_preamble_or_file_meta_reads_as_implicit_little_endian(make_ct):
    data = make_ct(U12, bits_stored=12, preamble=False)
    assert data[128:132] != b"DICM"
    sl = dicom.decode(dicom.parse(data))
    np.testing.assert_array_equal(sl.raw, U12)


@pytest.mark.parametrize("garbage", [0x1000, 0xF000, 0xA000])
def test_unused_high_bits_are_masked_like_pydicom_unsigned(make_ct, garbage):
    stored = U12 | np.uint16(garbage)
    data = make_ct(stored, bits_stored=12)
    expected = pydicom_pixels(data)
    np.testing.assert_array_equal(expected, U12)
    np.testing.assert_array_equal(dicom.decode(dicom.parse(data)).raw, expected)


def test_unused_high_bits_are_sign_extended_like_pydicom_signed(make_ct):
    stored = (S12.view(np.uint16) ^ np.uint16(0x5000)).view(np.int16)
    data = make_ct(stored, bits_stored=12, pixel_representation=1)
    expected = pydicom_pixels(data)
    np.testing.assert_array_equal(expected, S12)
    np.testing.assert_array_equal(dicom.decode(dicom.parse(data)).raw, expected)


@pytest.mark.parametrize(
    "pixel_representation, bits_stored, intercept, fixed",
    [(0, 12, 0.0, True), (0, 12, -99.0, True), (0, 12, -100.0, False), (0, 12, -1024.0, False), (1, 12, 0.0, False), (0, 16, 0.0, False)],
)
def test_header_fix_applies_to_unsigned_12_bit_with_intercept_above_minus_100(make_ct, pixel_representation, bits_stored, intercept, fixed):
    raw = U12.astype(np.int16) if pixel_representation else U12
    sl = dicom.decode(dicom.parse(make_ct(raw, bits_stored=bits_stored, pixel_representation=pixel_representation, intercept=intercept)))
    assert sl.fix is fixed


@pytest.mark.parametrize("kind", GENERATED)
def test_hu_is_the_rescale_in_float32_with_the_header_fix(make_ct, kind):
    raw, header = GENERATED[kind]
    sl = dicom.decode(dicom.parse(make_ct(raw, **header)))
    hu = sl.hu()
    assert hu.dtype == np.float32
    np.testing.assert_array_equal(hu, reference_hu(raw, header.get("slope", 1.0), header.get("intercept", -1024.0), sl.fix))


def test_header_fix_maps_signed_as_unsigned_pixels_back_to_their_hu(make_ct):
    true_hu = np.array([[-1000, -1, 0, 40], [79, 80, 1000, 3000]], dtype=np.int64)
    stored = np.mod(true_hu, 4096).astype(np.uint16)
    sl = dicom.decode(dicom.parse(make_ct(stored, bits_stored=12, intercept=0.0)))
    assert sl.fix
    hu = sl.hu()
    np.testing.assert_array_equal(hu[0, 1:], true_hu[0, 1:].astype(np.float32))
    np.testing.assert_array_equal(hu, (np.mod(true_hu + 1000, 4096) - 1000).astype(np.float32))


def test_pixel_stats_of_real_files_match_numpy(real_files):
    for path in real_files[::4]:
        data = path.read_bytes()
        ds = pydicom.dcmread(io.BytesIO(data))
        raw = ds.pixel_array
        stats = dicom.pixel_stats(dicom.decode(dicom.parse(data)).raw, float(ds.RescaleSlope), float(ds.RescaleIntercept))
        expected = reference_stats(raw, float(ds.RescaleSlope), float(ds.RescaleIntercept))
        assert stats == pytest.approx(expected, rel=1e-9, abs=1e-9), path.name


@pytest.mark.parametrize("kind", GENERATED)
def test_pixel_stats_of_generated_slices_match_numpy_before_the_header_fix(make_ct, kind):
    raw, header = GENERATED[kind]
    sl = dicom.decode(dicom.parse(make_ct(raw, **header)))
    slope, intercept = header.get("slope", 1.0), header.get("intercept", -1024.0)
    stats = dicom.pixel_stats(sl.raw, sl.slope, sl.intercept)
    assert stats == pytest.approx(reference_stats(raw, slope, intercept), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("slope, intercept", [(1.0, -1024.0), (1.0, 0.0), (0.5, -10.0), (2.0, -0.5), (-1.0, 40.0)])
def test_pct_window_excludes_the_bounds_0_and_80_exactly(slope, intercept):
    hu = np.array([-1.0, 0.0, 0.5, 1.0, 40.0, 79.0, 79.5, 80.0, 81.0, 0.0, 80.0, 20.0])
    raw = np.round((hu - intercept) / slope).astype(np.int16)
    hu_exact = raw.astype(np.float64) * slope + intercept
    stats = dicom.pixel_stats(raw.reshape(3, 4), slope, intercept)
    assert stats["img_pct_window"] == pytest.approx(np.mean((hu_exact > 0) & (hu_exact < 80)))
    assert 0 < stats["img_pct_window"] < 1


def test_pixel_stats_std_is_the_population_std():
    raw = np.array([[0, 0], [0, 4]], dtype=np.uint16)
    stats = dicom.pixel_stats(raw, 1.0, 0.0)
    assert stats["img_std"] == pytest.approx(np.sqrt(3.0))
    assert stats["img_mean"] == 1.0


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"this is a text file, not a DICOM\n" * 20, "dicom"),
    ],
)
def test_unparseable_bytes_raise_dicom_error(data, reason):
    with pytest.raises(DicomError, match="(?i)" + reason):
        dicom.parse(data)


def test_truncated_file_fails_with_dicom_error(make_ct):
    data = make_ct(U12, bits_stored=12)
    with pytest.raises(DicomError):
        dicom.decode(dicom.parse(data[: len(data) - 3000]))


def test_missing_pixel_data_fails_with_a_reason(make_ct):
    ds = dicom.parse(make_ct(U12, bits_stored=12, with_pixels=False))
    with pytest.raises(DicomError, match="no pixel data"):
        dicom.decode(ds)


def test_dimensions_larger_than_the_data_fail_before_decoding(make_ct):
    ds = dicom.parse(make_ct(U12, bits_stored=12, rows=128, columns=128))
    with pytest.raises(DicomError, match="truncated"):
        dicom.decode(ds)


def test_header_is_read_even_when_pixels_are_bad(make_ct):
    ds = dicom.parse(make_ct(U12, bits_stored=12, rows=128, sop="1.2.3.99"))
    assert dicom.read_header(ds)["SOPInstanceUID"] == "1.2.3.99"
    assert dicom.read_header(ds)["Rows"] == 128

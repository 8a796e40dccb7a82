"""Header flattening checked column by column against pydicom's own element values."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian
from real_manifest import RSNA

from ichprep.convert.read import elements
from ichprep.convert.read.header import flatten, flatten_elements

SKIPPED_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"}


@pytest.fixture
def validation():
    """Set pydicom's reading validation mode for one test, then restore it."""
    settings = pydicom.config.settings
    before = settings.reading_validation_mode
    yield lambda mode: setattr(settings, "reading_validation_mode", mode)
    settings.reading_validation_mode = before


def real_files() -> list[Path]:
    files = sorted(RSNA.glob("stage_2_*_images/*.dcm"))
    if not files:
        pytest.skip("real RSNA sample data not present (../shared/data/rsna)")
    return files


def same(flat, value) -> bool:
    """Whether a flattened value equals pydicom's value: numbers numerically, text as text."""
    if value is None or value == "":
        return flat is None
    if isinstance(value, (int, float)):
        return type(flat) in (int, float) and flat == value
    return flat == str(value)


def expected_columns(ds: Dataset) -> dict[str, object]:
    """Every column flatten should make, with pydicom's value for it."""
    expected: dict[str, object] = {}
    for elem in ds:
        if elem.tag == 0x7FE00010 or elem.tag.is_private or elem.VR in SKIPPED_VRS or not elem.keyword:
            continue
        if elem.VM > 1:
            expected[f"Multi{elem.keyword}"] = 1
            for i, v in enumerate(elem.value):
                expected[elem.keyword if i == 0 else f"{elem.keyword}{i}"] = v
        else:
            expected[elem.keyword] = None if elem.VM == 0 else elem.value
    return expected


def file_bytes(ds: Dataset) -> bytes:
    """``ds`` as an explicit VR little endian file with preamble and file meta."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def check_against_pydicom(ds: Dataset) -> dict[str, object]:
    row = flatten(ds)
    expected = expected_columns(ds)
    assert set(row) == set(expected)
    for column, value in expected.items():
        assert same(row[column], value), (column, row[column], value)
        assert row[column] is None or type(row[column]) in (int, float, str), column
    return row


def test_real_files_flatten_column_by_column(validation):
    validation(pydicom.config.IGNORE)
    for path in real_files():
        row = check_against_pydicom(pydicom.dcmread(path))
        assert row["SOPInstanceUID"] == path.stem
        assert {"ImagePositionPatient", "ImagePositionPatient1", "ImagePositionPatient2"} <= set(row)
        assert row["MultiImagePositionPatient"] == 1
        assert "PixelData" not in row


def test_real_files_agree_with_the_tags_table(validation):
    validation(pydicom.config.IGNORE)
    real_files()
    with open(RSNA / "TAGS.tsv", newline="") as fh:
        tags = list(csv.DictReader(fh, delimiter="\t"))
    for entry in tags:
        row = flatten(pydicom.dcmread(RSNA / entry["file"], stop_before_pixels=True))
        for name in ("Rows", "Columns", "BitsStored", "PixelRepresentation"):
            assert row[name] == int(entry[name]), (entry["file"], name)
        assert row["RescaleIntercept"] == float(entry["RescaleIntercept"])
        for name in ("SOPInstanceUID", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"):
            assert row[name] == entry[name]
        for name in ("ImagePositionPatient", "WindowCenter", "PixelSpacing"):
            values = [float(v) for v in entry[name].split("\\")]
            assert [row[name if i == 0 else f"{name}{i}"] for i in range(len(values))] == pytest.approx(values)
            assert (f"Multi{name}" in row) == (len(values) > 1)


def test_ct_small_multi_values_sequences_and_private_elements(validation):
    validation(pydicom.config.IGNORE)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    row = check_against_pydicom(ds)
    assert (row["ImageType"], row["ImageType1"], row["ImageType2"], row["MultiImageType"]) == \
        ("ORIGINAL", "PRIMARY", "AXIAL", 1)
    assert "OtherPatientIDsSequence" not in row
    assert row["PixelPaddingValue"] == -2000
    assert row["AccessionNumber"] is None
    assert not any(name.startswith("Unknown") or name == "DataSetTrailingPadding" for name in row)
    assert len(row) == len(expected_columns(ds))


def odd_file() -> bytes:
    """A small file with an empty sequence, empty values, a half-empty pair, and a DS 'abc'."""
    settings = pydicom.config.settings
    before = settings.writing_validation_mode
    settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        ds = Dataset()
        ds.SOPInstanceUID = "ID_odd"
        ds.OtherPatientIDsSequence = Sequence([])
        ds.add_new(0x00281050, "DS", "40\\")
        ds.add_new(0x00281051, "LO", "abc")
        ds.add_new(0x00200032, "DS", [])
        ds.add_new(0x00280009, "AT", [0x00100010, 0x00100020])
        ds.add_new(0x00280107, "US", [])
        ds.add_new(0x00091001, "LO", "private")
        data = file_bytes(ds)
    finally:
        settings.writing_validation_mode = before
    at = data.index(b"\x28\x00\x51\x10LO")
    return data[: at + 4] + b"DS" + data[at + 6:]  # WindowWidth becomes a DS holding 'abc'


@pytest.mark.parametrize("mode", ["IGNORE", "WARN"])
def test_odd_values_do_not_crash_and_keep_their_text(validation, mode):
    validation(getattr(pydicom.config, mode))
    ds = pydicom.dcmread(io.BytesIO(odd_file()))
    row = check_against_pydicom(ds)
    assert row["WindowCenter"] == 40.0 and row["WindowCenter1"] is None and row["MultiWindowCenter"] == 1
    assert row["WindowWidth"] == "abc"
    assert row["ImagePositionPatient"] is None and row["LargestImagePixelValue"] is None
    assert (row["FrameIncrementPointer"], row["FrameIncrementPointer1"]) == (0x00100010, 0x00100020)
    assert "OtherPatientIDsSequence" not in row


def test_strict_validation_keeps_the_raw_text_of_refused_elements(validation):
    data = odd_file()
    validation(pydicom.config.RAISE)
    row = flatten(pydicom.dcmread(io.BytesIO(data)))
    assert row["SOPInstanceUID"] == "ID_odd"
    assert row["WindowWidth"] == "abc"
    assert row["WindowCenter"] == 40.0


def test_strict_validation_gives_the_same_row_on_real_files(validation):
    path = real_files()[0]
    validation(pydicom.config.IGNORE)
    relaxed = flatten(pydicom.dcmread(path))
    validation(pydicom.config.RAISE)
    assert flatten(pydicom.dcmread(path)) == relaxed


def test_rows_of_different_files_save_as_parquet(tmp_path, validation):
    validation(pydicom.config.IGNORE)
    rows = [flatten(pydicom.dcmread(p, stop_before_pixels=True)) for p in real_files()]
    rows.append(flatten(pydicom.dcmread(get_testdata_file("CT_small.dcm"))))
    frame = pd.DataFrame(rows)
    frame.to_parquet(tmp_path / "h.parquet")
    assert pd.read_parquet(tmp_path / "h.parquet").shape == frame.shape


def test_text_in_another_character_set_is_decoded_by_pydicom(validation):
    validation(pydicom.config.IGNORE)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen"
    ds.InstitutionName = "Hôpital Nord"
    row = check_against_pydicom(pydicom.dcmread(io.BytesIO(file_bytes(ds))))
    assert (row["PatientName"], row["InstitutionName"]) == ("Müller^Jürgen", "Hôpital Nord")


def test_real_files_flatten_column_by_column_from_their_bytes(validation):
    """The fast road (undecoded elements straight from the file) makes pydicom's columns too."""
    validation(pydicom.config.IGNORE)
    for path in real_files():
        found = elements.read(path.read_bytes())
        assert found is not None, path.name
        row = flatten_elements(found.items)
        ds = pydicom.dcmread(path)
        assert set(row) == set(expected_columns(ds)), path.name
        for column, value in expected_columns(ds).items():
            assert same(row[column], value), (path.name, column, row[column], value)
        assert row == flatten(ds), path.name

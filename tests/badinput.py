"""Bad and hostile DICOM files, built in memory, with the outcome each must get.

Not a test module: tests import it. Every case is a name, a builder returning the file's
bytes, the outcome ``convert`` must record ("ok" or "failed") and a substring of the
manifest's one-line reason. The files start from a small valid CT slice (``ct_dataset``)
and break one thing, so a case fails for its own reason and not for an accident.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
)

SIDE = 32
"""Side of the generated slices: small, so hundreds of cases run in well under a second each."""


def ct_pixels(rows: int = SIDE, cols: int = SIDE, seed: int = 0) -> np.ndarray:
    """Stored values of a head-like slice (signed 16-bit, intercept 0): air, skull ring, brain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    r = np.hypot((yy - rows / 2) / (rows / 2), (xx - cols / 2) / (cols / 2))
    hu = np.where(r < 0.7, 35, np.where(r < 0.85, 1200, -1000)).astype(np.int16)
    return hu + rng.integers(-5, 6, size=(rows, cols)).astype(np.int16)


def ct_dataset(
    pixels: np.ndarray | None = None,
    syntax: UID = ExplicitVRLittleEndian,
    intercept: str = "0",
    slope: str = "1",
    image_id: str = "ID_000000bad",
) -> Dataset:
    """A valid single-frame CT slice whose pixels are ``pixels`` (int16 by default)."""
    raw = ct_pixels() if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = image_id
    ds.Modality = "CT"
    ds.PatientID = "ID_patient"
    ds.StudyInstanceUID = "ID_study"
    ds.SeriesInstanceUID = "ID_series"
    ds.ImagePositionPatient = [-125, -125, 10.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = raw.shape
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = raw.dtype.itemsize * 8
    ds.BitsStored = raw.dtype.itemsize * 8
    ds.HighBit = raw.dtype.itemsize * 8 - 1
    ds.PixelRepresentation = int(raw.dtype.kind == "i")
    ds.WindowCenter = "40"
    ds.WindowWidth = "80"
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    byteorder = ">" if syntax == ExplicitVRBigEndian else "<"
    ds.PixelData = raw.astype(raw.dtype.newbyteorder(byteorder)).tobytes()
    ds["PixelData"].VR = "OB" if raw.dtype.itemsize == 1 else "OW"
    return ds


def encode(ds: Dataset) -> bytes:
    """The dataset as a DICOM file (preamble, file meta, data set), without validation."""
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def with_element(ds: Dataset, tag: int, vr: str, value: bytes) -> bytes:
    """The file with element ``tag`` re-written as raw bytes with any VR: nothing validates them."""
    return _insert_before_pixels(_without(ds, tag), _explicit(tag >> 16, tag & 0xFFFF, vr, value))


def _without(ds: Dataset, tag: int) -> bytes:
    del ds[tag]
    return encode(ds)


def valid() -> bytes:
    return encode(ct_dataset())


def truncated_pixel_data() -> bytes:
    data = valid()
    return data[: len(data) - SIDE * SIDE]


def empty() -> bytes:
    return b""


def text_file() -> bytes:
    return b"Patient notes: this is not a DICOM file, only text saved as .dcm\n" * 20


def no_pixel_data() -> bytes:
    ds = ct_dataset()
    del ds.PixelData
    return encode(ds)


def empty_pixel_data() -> bytes:
    ds = ct_dataset()
    ds.PixelData = b""
    return encode(ds)


def rows_larger_than_data() -> bytes:
    ds = ct_dataset()
    ds.Rows = SIDE * 2
    return encode(ds)


def rows_smaller_than_data() -> bytes:
    ds = ct_dataset()
    ds.Rows = SIDE // 2
    return encode(ds)


def rows_text_abc() -> bytes:
    return with_element(ct_dataset(), 0x00280010, "IS", b"abc ")


def rows_short_value() -> bytes:
    """Rows declared US but holding one byte: the US/IS confusion at the byte level."""
    return _insert_before_pixels(_without(ct_dataset(), 0x00280010), struct.pack("<HH2sH", 0x0028, 0x0010, b"US", 1) + b"\x07")


def intercept_x() -> bytes:
    return with_element(ct_dataset(), 0x00281052, "DS", b"x ")


def intercept_nan() -> bytes:
    return encode(ct_dataset(intercept="NaN"))


def slope_zero() -> bytes:
    return encode(ct_dataset(slope="0"))


def huge_dimensions() -> bytes:
    ds = ct_dataset()
    ds.Rows = ds.Columns = 60000
    return encode(ds)


def large_dimensions_tiny_data() -> bytes:
    """8192 x 8192 is within the side limit: only the size check stops a 128 MB allocation."""
    ds = ct_dataset()
    ds.Rows = ds.Columns = 8192
    return encode(ds)


def negative_dimensions() -> bytes:
    return with_element(ct_dataset(), 0x00280010, "SS", struct.pack("<h", -32))


def zero_columns() -> bytes:
    ds = ct_dataset()
    ds.Columns = 0
    return encode(ds)


def bits_allocated_8() -> bytes:
    return encode(ct_dataset(pixels=bits8_pixels(), intercept="-1024", slope="8"))


def bits8_pixels() -> np.ndarray:
    """uint8 stored values that, with slope 8 and intercept -1024, cover air, brain and bone."""
    return (np.arange(SIDE * SIDE, dtype=np.int64) % 256).astype(np.uint8).reshape(SIDE, SIDE)


def bits_allocated_32() -> bytes:
    return encode(ct_dataset(pixels=ct_pixels().astype(np.int32)))


def bits_stored_above_allocated() -> bytes:
    ds = ct_dataset()
    ds.BitsStored = 17
    return encode(ds)


def bits_allocated_12() -> bytes:
    ds = ct_dataset()
    ds.BitsAllocated = 12
    return encode(ds)


def pixel_representation_2() -> bytes:
    ds = ct_dataset()
    ds.PixelRepresentation = 2
    return encode(ds)


def multi_frame() -> bytes:
    frames = np.stack([ct_pixels(seed=1), ct_pixels(seed=2)])
    ds = ct_dataset()
    ds.NumberOfFrames = 2
    ds.PixelData = frames.astype("<i2").tobytes()
    return encode(ds)


def monochrome1() -> bytes:
    ds = ct_dataset()
    ds.PhotometricInterpretation = "MONOCHROME1"
    return encode(ds)


def modality_mr() -> bytes:
    ds = ct_dataset()
    ds.Modality = "MR"
    return encode(ds)


def rgb_secondary_capture() -> bytes:
    rgb = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    ds = ct_dataset(pixels=rgb[..., 0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.PixelData = rgb.tobytes()
    return encode(ds)


def _encapsulated(syntax: UID) -> bytes:
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not really compressed pixels \xff\xd9"])
    ds["PixelData"].VR = "OB"
    return encode(ds)


def jpeg_baseline() -> bytes:
    return _encapsulated(JPEGBaseline8Bit)


def jpeg_2000() -> bytes:
    return _encapsulated(JPEG2000Lossless)


def big_endian() -> bytes:
    return encode(ct_dataset(syntax=ExplicitVRBigEndian))


def implicit_vr() -> bytes:
    return encode(ct_dataset(syntax=ImplicitVRLittleEndian))


def element_length_past_eof() -> bytes:
    """A PatientName (0010,0010) LO whose 16-bit length claims far more bytes than follow."""
    element = struct.pack("<HH2sH", 0x0010, 0x0010, b"LO", 0xFFF0) + b"Doe^John"
    return _insert_before_pixels(valid(), element)


def _insert_before_pixels(data: bytes, element: bytes) -> bytes:
    """Splice raw bytes just before the Pixel Data element, so everything after is misparsed."""
    marker = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    return data[:marker] + element + data[marker:]


def pixel_length_past_eof() -> bytes:
    """Pixel Data whose 32-bit length claims 4 GB while the whole slice follows: nothing is allocated for it."""
    return _pixel_length(0xFFFFFFF0)


def pixel_undefined_length() -> bytes:
    """Native Pixel Data with the undefined length that only encapsulated data may have."""
    return _pixel_length(0xFFFFFFFF)


def _pixel_length(length: int) -> bytes:
    data = valid()
    marker = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010))
    return data[: marker + 8] + struct.pack("<I", length) + data[marker + 12 :]


def latin1_patient_name() -> bytes:
    ds = ct_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    data = encode(ds)
    return _insert_before_pixels(data, _explicit(0x0010, 0x0010, "PN", "Müller^Jürgen".encode("latin-1")))


def undeclared_latin1_patient_name() -> bytes:
    return _insert_before_pixels(valid(), _explicit(0x0010, 0x0010, "PN", "Gonçalves^Zoë".encode("latin-1")))


def bad_character_set() -> bytes:
    ds = ct_dataset()
    ds.SpecificCharacterSet = "ISO_IR 9999"
    ds.PatientName = "Doe^John"
    return encode(ds)


def _explicit(group: int, element: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" "
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


@dataclass(frozen=True)
class Case:
    """One file and the manifest outcome it must get."""

    name: str
    build: Callable[[], bytes]
    outcome: str
    reason: str = ""

    def write(self, folder: Path) -> Path:
        """The file as ``folder/<name>.dcm`` (its image id is the case name)."""
        path = folder / f"{self.name}.dcm"
        path.write_bytes(self.build())
        return path


CASES: tuple[Case, ...] = (
    Case("valid", valid, "ok"),
    Case("implicit_vr", implicit_vr, "ok"),
    Case("big_endian", big_endian, "ok"),
    Case("truncated_pixel_data", truncated_pixel_data, "failed", "pixel data truncated"),
    Case("empty", empty, "failed", "empty file"),
    Case("text_file", text_file, "failed", "not a DICOM file"),
    Case("no_pixel_data", no_pixel_data, "failed", "no pixel data"),
    Case("empty_pixel_data", empty_pixel_data, "failed", "pixel data is empty"),
    Case("rows_larger_than_data", rows_larger_than_data, "failed", "pixel data truncated"),
    Case("rows_smaller_than_data", rows_smaller_than_data, "ok"),
    Case("rows_text_abc", rows_text_abc, "failed", "bad Rows 'abc'"),
    Case("rows_short_value", rows_short_value, "failed", "bad Rows ("),
    Case("intercept_x", intercept_x, "failed", "bad RescaleIntercept 'x'"),
    Case("intercept_nan", intercept_nan, "failed", "bad RescaleIntercept"),
    Case("slope_zero", slope_zero, "failed", "RescaleSlope is 0"),
    Case("huge_dimensions", huge_dimensions, "failed", "bad dimensions 60000 x 60000"),
    Case("large_dimensions_tiny_data", large_dimensions_tiny_data, "failed", "pixel data truncated"),
    Case("negative_dimensions", negative_dimensions, "failed", "bad dimensions -32"),
    Case("zero_columns", zero_columns, "failed", "bad dimensions"),
    Case("bits_allocated_8", bits_allocated_8, "ok"),
    Case("bits_allocated_32", bits_allocated_32, "ok"),
    Case("bits_allocated_12", bits_allocated_12, "failed", "unsupported BitsAllocated 12"),
    Case("bits_stored_above_allocated", bits_stored_above_allocated, "failed", "bad BitsStored 17"),
    Case("pixel_representation_2", pixel_representation_2, "failed", "bad PixelRepresentation 2"),
    Case("multi_frame", multi_frame, "failed", "multi-frame"),
    Case("monochrome1", monochrome1, "ok"),
    Case("modality_mr", modality_mr, "failed", "modality MR is not CT"),
    Case("rgb_secondary_capture", rgb_secondary_capture, "failed", "SamplesPerPixel 3"),
    Case("jpeg_baseline", jpeg_baseline, "failed", "JPEG Baseline"),
    Case("jpeg_2000", jpeg_2000, "failed", "JPEG 2000"),
    Case("element_length_past_eof", element_length_past_eof, "failed", "no pixel data"),
    Case("pixel_length_past_eof", pixel_length_past_eof, "ok"),
    Case("pixel_undefined_length", pixel_undefined_length, "failed", "no pixel data"),
    Case("latin1_patient_name", latin1_patient_name, "ok"),
    Case("undeclared_latin1_patient_name", undeclared_latin1_patient_name, "ok"),
    Case("bad_character_set", bad_character_set, "ok"),
)
"""Every bad-input case; docs/hardening.md tabulates the same outcomes."""


def case(name: str) -> Case:
    """The case called ``name``."""
    return next(c for c in CASES if c.name == name)


def convert_file(path: Path, size: int = 64, crop: bool = True, image_id: str | None = None) -> dict:
    """The manifest row a worker gives one file, its image written as ``<id>.png`` beside it."""
    from ichprep.convert.run.worker import Job, Task, run
    from ichprep.convert.sources import Files, Input
    from ichprep.store import ImageFiles
    from ichprep.windows import PRESETS

    channels = (PRESETS["brain"], PRESETS["subdural"], PRESETS["bone"])
    job = Job(Files(path, "file"), channels, size, crop, ImageFiles(str(path.parent), "png"))
    return run(job, Task((Input(image_id or path.stem, str(path), str(path)),))).rows[0]

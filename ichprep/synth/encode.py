"""A planned slice as a DICOM file: HU to stored pixels under the slice's header, then the file.

The encodings reproduce the competition's formats and quirks (12-bit unsigned with intercept
-1024, int16 with -2000 padding, the signed-as-unsigned bug, RLE, implicit VR, no preamble), so
convert meets here what it meets in the real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from ichprep.synth.plan import SLICE_THICKNESS, Encoding, SliceSpec, truth_hu


def stored_pixels(hu: np.ndarray, encoding: Encoding) -> np.ndarray:
    """The stored pixel array that decodes to ``hu`` under ``encoding``'s header."""
    if encoding.signed_as_unsigned:
        return np.mod(hu.astype(np.int32), 4096).astype(np.uint16)
    raw = hu.astype(np.int32) - encoding.intercept
    dtype = np.int16 if encoding.pixel_representation else np.uint16
    info = np.iinfo(dtype)
    top = min(info.max, 2**encoding.bits_stored - 1) if not encoding.pixel_representation else info.max
    if raw.min() < info.min or raw.max() > top:
        raise ValueError(f"HU {hu.min()}..{hu.max()} do not fit {encoding}")
    return raw.astype(dtype)


def _number(value: float) -> str:
    """A decimal string as short as the value needs (DS allows 16 characters)."""
    return f"{value:.10g}"


def dataset(spec: SliceSpec, raw: np.ndarray) -> Dataset:
    """The DICOM data set of one image: the tags the competition files carry, pixels included."""
    enc = spec.encoding
    rows, cols = raw.shape
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = spec.image_id
    ds.Modality = "CT"
    ds.PatientID = spec.patient_id
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = ""
    ds.KVP = "120"
    ds.SliceThickness = _number(SLICE_THICKNESS)
    ds.ImagePositionPatient = [_number(spec.origin[0]), _number(spec.origin[1]), _number(spec.z)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [_number(spec.section.spacing)] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = enc.bits_stored
    ds.HighBit = enc.bits_stored - 1
    ds.PixelRepresentation = enc.pixel_representation
    centers = [_number(level) for level, _ in enc.windows]
    widths = [_number(width) for _, width in enc.windows]
    ds.WindowCenter = centers if len(centers) > 1 else centers[0]
    ds.WindowWidth = widths if len(widths) > 1 else widths[0]
    ds.RescaleIntercept = _number(enc.intercept)
    ds.RescaleSlope = "1"
    ds.PixelData = raw.tobytes()
    return ds


def write_slice(spec: SliceSpec, path: Path) -> None:
    """Encode ``spec``'s truth HU into a DICOM file at ``path`` with its framing and compression."""
    enc = spec.encoding
    raw = stored_pixels(truth_hu(spec), enc)
    ds = dataset(spec, raw)
    if not enc.file_meta:
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
        return
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[spec.image_id])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if enc.explicit_vr else ImplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    if enc.rle:
        ds.compress(RLELossless, raw, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)

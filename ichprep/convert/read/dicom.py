"""Read one DICOM file: its flattened header, its stored pixels and how to map them to HU.

Each input is read once, from bytes already in memory: the same read feeds the image, the
manifest's header columns and its pixel statistics. The competition's files (native little
endian, preamble and file meta, nothing unusual) are read by ``elements`` straight from their
bytes, and their pixels are a zero-copy ``np.frombuffer`` view of the file; every other file,
and any file that read finds odd, goes through pydicom and its pixel pipeline, imported only
then. Both roads give the same header row and the same pixels as pydicom's ``pixel_array`` (the
tests check this on every test file). Everything that can be wrong with a file raises
``DicomError`` with a one-line reason, checked *before* any large allocation; the fast road
takes only files with nothing wrong and leaves every error to the pydicom road, so the reasons
are always the same.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import ArrayLike

from ichprep.convert.read import elements
from ichprep.convert.read.header import flatten, flatten_elements

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MAX_SIDE = 8192
"""Larger slices are refused: no CT slice is this big, and it bounds memory per file."""

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
NATIVE_LE = frozenset({IMPLICIT_VR_LE, "1.2.840.10008.1.2.1"})
BRAIN_RANGE = (0.0, 80.0)
"""HU interval (open) counted by ``img_pct_window``: the brain window."""
LAYOUT_KEYWORDS = ("Modality", "Rows", "Columns", "SamplesPerPixel", "NumberOfFrames", "BitsAllocated",
                   "BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept")
"""The header elements that say how to decode and rescale the pixels."""


class DicomError(Exception):
    """A file that cannot be converted; ``str(err)`` is the one-line reason."""


@dataclass(frozen=True)
class Slice:
    """Stored pixels of one CT slice and the mapping to HU.

    ``raw`` is exactly pydicom's ``pixel_array`` (before rescale and before the header fix).
    ``fix`` says whether the signed-as-unsigned header bug fix applies (spec §3.2).
    """

    raw: np.ndarray
    slope: float
    intercept: float
    fix: bool

    def hu(self) -> np.ndarray:
        """HU as float32, the header fix applied: the reference the renderer must match."""
        return hu_of(self.raw, self.slope, self.intercept, self.fix)


def hu_of(raw: np.ndarray, slope: float, intercept: float, fix: bool) -> np.ndarray:
    """Modality rescale in float32, with the signed-as-unsigned fix when ``fix``.

    The fix (Jeremy Howard's ``fix_pxrepr``): ``raw' = (raw + 1000) mod 4096`` and the
    intercept becomes -1000, so ``HU = slope * ((raw + 1000) mod 4096) - 1000``.
    """
    values = raw.astype(np.int64)
    if fix:
        return (np.float32(slope) * ((values + 1000) % 4096).astype(np.float32) - np.float32(1000)).astype(np.float32)
    return (np.float32(slope) * values.astype(np.float32) + np.float32(intercept)).astype(np.float32)


def needs_fix(pixel_representation: ArrayLike, bits_stored: ArrayLike, intercept: ArrayLike) -> bool | np.ndarray:
    """The signed-as-unsigned bug: unsigned 12-bit pixels with an intercept above -100.

    Jeremy's check is PixelRepresentation 0 and intercept > -100; we also require
    BitsStored 12 (as the popular kernels do) because the mod-4096 repair is only
    meaningful for 12-bit data. On the competition data both rules pick the same files.
    The one place the rule lives: it takes a file's numbers or a table's columns (pandas or
    numpy, where a missing value never needs the fix) alike.
    """
    return (pixel_representation == 0) & (bits_stored == 12) & (intercept > -100)


def parse(data: bytes) -> Dataset:
    """Parse a DICOM file from bytes with pydicom, with or without preamble and file meta."""
    if not data:
        raise DicomError("empty file")
    import pydicom

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
    except Exception as err:  # pydicom raises many types for damaged files
        raise DicomError(f"not a readable DICOM file ({one_line(err)})") from None
    if not has_preamble and not _looks_like_dicom(ds):
        raise DicomError("not a DICOM file (no DICM preamble and no image elements)")
    return ds


def _looks_like_dicom(ds: Dataset) -> bool:
    """A preamble-less parse is trusted only if it found the elements of an image."""
    try:
        return any(tag in ds for tag in (0x00080018, 0x00280010, 0x7FE00010)) and len(ds) >= 3
    except Exception:
        return False


@dataclass(frozen=True)
class Read:
    """One parsed file: its flattened header at once, its pixels when asked for.

    Kept apart so that a file whose pixels cannot be decoded still gives the manifest its header.
    Exactly one of ``found`` (the fast road) and ``dataset`` (pydicom's) is set.
    """

    header: dict[str, Any]
    data: bytes
    found: elements.Elements | None = None
    dataset: Dataset | None = None

    def decode(self) -> Slice:
        """The stored pixels and HU mapping (``DicomError`` for anything that cannot be rendered)."""
        if self.found is not None:
            sl = _fast_slice(self.header, self.found, self.data)
            if sl is not None:
                return sl
        return decode(self.dataset if self.dataset is not None else parse(self.data))


def read(data: bytes) -> Read:
    """Parse a file's bytes once: the header row for the manifest and, on demand, the slice."""
    found = elements.read(data)
    if found is not None:
        row = flatten_elements(found.items)
        if row is not None:
            return Read(row, data, found=found)
    ds = parse(data)
    return Read(read_header(ds), data, dataset=ds)


def read_header(ds: Dataset) -> dict[str, Any]:
    """The flattened header row, or an empty row if even that fails."""
    try:
        return flatten(ds)
    except Exception:
        return {}


Getter = Callable[[str, Any], Any]
"""``get(keyword, default)``: a header value by keyword."""


@dataclass(frozen=True)
class Layout:
    """What the header says about the stored pixels, checked: shape, bits and the HU mapping."""

    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    slope: float
    intercept: float

    @property
    def fix(self) -> bool:
        return needs_fix(self.pixel_representation, self.bits_stored, self.intercept)


def _get(ds: Dataset, keyword: str, default: Any) -> Any:
    """An element's value; ``DicomError`` when its bytes do not parse as its VR (e.g. a 1-byte US)."""
    try:
        return ds.get(keyword, default)
    except Exception as err:
        raise DicomError(f"bad {keyword} ({one_line(err)[:120]})") from None


def _int_tag(get: Getter, keyword: str, default: int | None = None) -> int:
    value = get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise DicomError(f"missing {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DicomError(f"bad {keyword} {value!r}") from None


def _float_tag(get: Getter, keyword: str, default: float) -> float:
    value = get(keyword, default)
    if value is None or value == "":
        return default
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str):
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DicomError(f"bad {keyword} {value!r}") from None
    if not math.isfinite(number):
        raise DicomError(f"bad {keyword} {value!r}")
    return number


def layout(get: Getter) -> Layout:
    """The checked pixel layout of a CT slice's header; ``DicomError`` for anything we cannot render."""
    modality = str(get("Modality", "CT") or "CT").upper()
    if modality not in ("CT", ""):
        raise DicomError(f"modality {modality} is not CT")
    rows, cols = _int_tag(get, "Rows"), _int_tag(get, "Columns")
    if not (0 < rows <= MAX_SIDE and 0 < cols <= MAX_SIDE):
        raise DicomError(f"bad dimensions {rows} x {cols}")
    samples = _int_tag(get, "SamplesPerPixel", 1)
    if samples != 1:
        raise DicomError(f"not a greyscale slice (SamplesPerPixel {samples})")
    frames = _int_tag(get, "NumberOfFrames", 1)
    if frames != 1:
        raise DicomError(f"multi-frame data ({frames} frames) is not a CT slice")
    bits_allocated = _int_tag(get, "BitsAllocated")
    if bits_allocated not in (8, 16, 32):
        raise DicomError(f"unsupported BitsAllocated {bits_allocated}")
    bits_stored = _int_tag(get, "BitsStored", bits_allocated)
    if not 1 <= bits_stored <= bits_allocated:
        raise DicomError(f"bad BitsStored {bits_stored} for BitsAllocated {bits_allocated}")
    pixel_representation = _int_tag(get, "PixelRepresentation", 0)
    if pixel_representation not in (0, 1):
        raise DicomError(f"bad PixelRepresentation {pixel_representation}")
    slope = _float_tag(get, "RescaleSlope", 1.0)
    intercept = _float_tag(get, "RescaleIntercept", 0.0)
    if slope == 0:
        raise DicomError("RescaleSlope is 0")
    return Layout(rows, cols, bits_allocated, bits_stored, pixel_representation, slope, intercept)


def decode(ds: Dataset) -> Slice:
    """Stored pixels and rescale of a CT slice read by pydicom; ``DicomError`` for anything we cannot render."""
    if "PixelData" not in ds:
        raise DicomError("no pixel data")
    found = layout(lambda keyword, default: _get(ds, keyword, default))
    syntax = ds.file_meta.get("TransferSyntaxUID", IMPLICIT_VR_LE) if hasattr(ds, "file_meta") else IMPLICIT_VR_LE
    if syntax in NATIVE_LE or not getattr(syntax, "is_encapsulated", False):
        raw = _native_pixels(ds, found, syntax)
    else:
        raw = _pydicom_pixels(ds, syntax)
    if raw.ndim != 2 or raw.shape != (found.rows, found.cols):
        raise DicomError(f"decoded pixels have shape {raw.shape}, header says {found.rows} x {found.cols}")
    return Slice(raw=raw, slope=found.slope, intercept=found.intercept, fix=found.fix)


def _fast_slice(header: dict[str, Any], found: elements.Elements, data: bytes) -> Slice | None:
    """The slice of a file read by ``elements`` when it is a plain 16-bit one; None leaves it to ``decode``.

    Anything unusual (no or short pixel data, a layout element with several values, a layout
    ``decode`` would refuse, other bit depths) returns None, so errors always come from ``decode``.
    """
    if found.pixels is None or any(f"Multi{keyword}" in header for keyword in LAYOUT_KEYWORDS):
        return None
    try:
        shape = layout(header.get)
    except DicomError:
        return None
    offset, length = found.pixels
    count = shape.rows * shape.cols
    if shape.bits_allocated != 16 or length < 2 * count:
        return None
    raw = np.frombuffer(data, "<i2" if shape.pixel_representation else "<u2", count, offset).reshape(shape.rows, shape.cols)
    raw = _without_unused_bits(raw, shape.bits_stored, shape.pixel_representation)
    return Slice(raw=raw, slope=shape.slope, intercept=shape.intercept, fix=shape.fix)


def _native_pixels(ds: Dataset, shape: Layout, syntax: str) -> np.ndarray:
    """Native pixels, size-checked before decoding; a view on the file bytes where possible."""
    try:
        data = ds.PixelData
    except Exception as err:
        raise DicomError(f"unreadable pixel data ({one_line(err)})") from None
    if not data:
        raise DicomError("pixel data is empty")
    if not isinstance(data, (bytes, bytearray)):
        raise DicomError("pixel data is not a byte string")
    rows, cols, bits_allocated = shape.rows, shape.cols, shape.bits_allocated
    needed = rows * cols * bits_allocated // 8
    if len(data) < needed:
        raise DicomError(f"pixel data truncated: {len(data)} bytes, {rows} x {cols} x {bits_allocated} bits needs {needed}")
    if bits_allocated != 16 or syntax not in NATIVE_LE:
        return _pydicom_pixels(ds, syntax)
    raw = np.frombuffer(data, dtype="<i2" if shape.pixel_representation else "<u2", count=rows * cols).reshape(rows, cols)
    return _without_unused_bits(raw, shape.bits_stored, shape.pixel_representation)


def _without_unused_bits(raw: np.ndarray, bits_stored: int, pr: int) -> np.ndarray:
    """pydicom's correction of the bits above BitsStored: cleared (unsigned) or sign-extended (signed)."""
    if bits_stored < 16 and not _fits(raw, bits_stored, pr):
        shift = 16 - bits_stored
        raw = np.right_shift(np.left_shift(raw, shift), shift)
    return raw


def _fits(raw: np.ndarray, bits_stored: int, pr: int) -> bool:
    """True when no unused high bit is set, so pydicom's unused-bit correction is a no-op."""
    lo, hi, _, _ = cv2.minMaxLoc(raw)
    if pr:
        return -(1 << (bits_stored - 1)) <= lo and hi < (1 << (bits_stored - 1))
    return hi < (1 << bits_stored)


def _pydicom_pixels(ds: Dataset, syntax) -> np.ndarray:
    """pydicom's pixel pipeline, for compressed and unusual native data."""
    try:
        arr = ds.pixel_array
    except Exception as err:
        name = getattr(syntax, "name", str(syntax))
        raise DicomError(f"cannot decode pixel data ({name}): {one_line(err)}") from None
    return np.asarray(arr)


def pixel_stats(raw: np.ndarray, slope: float, intercept: float) -> dict[str, float]:
    """Spec §1 pixel summary of the stored pixels, before rescale and before the header fix.

    ``img_pct_window`` counts pixels whose HU (``raw * slope + intercept``) lies strictly
    inside (0, 80). std is the population standard deviation.
    """
    src = raw if raw.dtype in (np.uint8, np.int8, np.uint16, np.int16, np.float32, np.float64) else raw.astype(np.float64)
    lo, hi, _, _ = cv2.minMaxLoc(src)
    mean = cv2.sumElems(src)[0] / raw.size
    variance = max(cv2.norm(src, cv2.NORM_L2SQR) / raw.size - mean * mean, 0.0)
    lo_raw, hi_raw = ((b - intercept) / slope for b in BRAIN_RANGE)
    if slope < 0:
        lo_raw, hi_raw = hi_raw, lo_raw
    inside = _count_open_interval(raw, lo_raw, hi_raw)
    return {
        "img_min": float(lo),
        "img_max": float(hi),
        "img_mean": float(mean),
        "img_std": math.sqrt(variance),
        "img_pct_window": inside / raw.size,
    }


def _count_open_interval(raw: np.ndarray, lo: float, hi: float) -> int:
    """Pixels with lo < value < hi; on integer data as integer bounds for cv2.inRange's speed."""
    if raw.dtype in (np.uint8, np.uint16, np.int16):
        info = np.iinfo(raw.dtype)
        first, last = max(math.floor(lo) + 1, info.min), min(math.ceil(hi) - 1, info.max)
        if first > last:
            return 0
        return int(cv2.countNonZero(cv2.inRange(raw, first, last)))
    return int(np.count_nonzero((raw > lo) & (raw < hi)))


def one_line(err: BaseException) -> str:
    """An exception as one line of at most 300 characters, for the manifest and stderr."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:300]

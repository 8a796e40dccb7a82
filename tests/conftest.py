"""Shared fixtures of the conversion tests: a CT DICOM writer, the real sample files, pydicom's CT_small.

The writer builds a slice from a stored-pixel array with any BitsStored, PixelRepresentation,
rescale, transfer syntax and framing (preamble and file meta or neither), so every kind of file
the reader must handle is generated in a few milliseconds. The reference math the tests compare
against (the window formula, the resampled reference) lives here too, in plain numpy and OpenCV,
independent of the modules under test.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    RLELossless,
)
from real_manifest import RSNA

HUB_ARCH = "resnet18.a1_in1k"
"""The weights `ichprep train` starts from by default (resnet18's default tag), prefilled in the suite's cache."""


def pytest_configure(config: pytest.Config) -> None:
    """Run the suite against a Hugging Face cache it filled itself, offline: nothing is ever downloaded."""
    import os
    import tempfile

    from hub_cache import prefill

    home = Path(tempfile.mkdtemp(prefix="ichprep-hf-"))
    os.environ["HF_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    prefill(home, HUB_ARCH)
    config._ichprep_hf_home = home


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the demo the demo's tests check, in the background, as soon as they are known to run (``demo_job``)."""
    if any(item.path.name == "test_demo.py" for item in session.items):
        from demo_job import DemoJob

        session.config._ichprep_demo = DemoJob()


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    job = getattr(config, "_ichprep_demo", None)
    if job is not None:
        job.close()
    home = getattr(config, "_ichprep_hf_home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


DEFAULT_WINDOWS = ((40.0, 80.0), (80.0, 200.0), (600.0, 2800.0))
"""(level, width) of the default R, G, B channels: brain, subdural, bone."""


def ct_bytes(
    raw: np.ndarray,
    *,
    bits_stored: int | None = None,
    pixel_representation: int | None = None,
    intercept: float = -1024.0,
    slope: float = 1.0,
    syntax: UID = ExplicitVRLittleEndian,
    preamble: bool = True,
    sop: str = "1.2.826.0.1.3680043.8.498.1",
    rows: int | None = None,
    columns: int | None = None,
    pixel_data: bytes | None = None,
    with_pixels: bool = True,
) -> bytes:
    """A CT slice as DICOM file bytes, its pixel data being ``raw`` as stored values.

    ``rows``/``columns`` override the header's dimensions (to lie about the data) and
    ``pixel_data`` the stored bytes. ``preamble=False`` writes neither preamble nor file meta:
    a bare implicit-VR little-endian data set, as some exporters produce.
    """
    raw = np.ascontiguousarray(raw)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "CT"
    ds.PatientID = "ID_patient"
    ds.StudyInstanceUID = sop + ".1"
    ds.SeriesInstanceUID = sop + ".2"
    ds.ImagePositionPatient = [-125.0, -120.0, 10.0]
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows if rows is not None else raw.shape[0]
    ds.Columns = columns if columns is not None else raw.shape[1]
    ds.BitsAllocated = raw.dtype.itemsize * 8
    ds.BitsStored = bits_stored if bits_stored is not None else ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = pixel_representation if pixel_representation is not None else int(raw.dtype.kind == "i")
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    if with_pixels:
        order = ">" if syntax == ExplicitVRBigEndian else "<"
        ds.PixelData = pixel_data if pixel_data is not None else raw.astype(raw.dtype.newbyteorder(order)).tobytes()
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if syntax == RLELossless else syntax
        ds.preamble = b"\0" * 128
        if syntax == RLELossless:
            ds.compress(RLELossless, raw, encoding_plugin="pydicom")
    buffer = io.BytesIO()
    if preamble:
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    else:
        pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    data = buffer.getvalue()
    assert (data[128:132] == b"DICM") == preamble
    return data


def window_u8(hu: np.ndarray, windows: Sequence[tuple[float, float]] = DEFAULT_WINDOWS) -> np.ndarray:
    """The spec's formula at full resolution: floor(clip((HU - (L - W/2)) / W, 0, 1) * 255 + 0.5) per window."""
    hu = np.asarray(hu, dtype=np.float64)
    planes = [np.floor(np.clip((hu - (level - width / 2)) / width, 0.0, 1.0) * 255.0 + 0.5) for level, width in windows]
    return np.stack(planes, axis=-1).astype(np.uint8)


def resampled_reference(
    hu: np.ndarray, square: tuple[int, int, int], size: int, windows: Sequence[tuple[float, float]] = DEFAULT_WINDOWS
) -> np.ndarray:
    """Windowed in float64, cropped/padded to ``square`` (y0, x0, side) with 0, area-resized, rounded half up at the end."""
    hu = np.asarray(hu, dtype=np.float64)
    unit = np.stack([np.clip((hu - (level - width / 2)) / width, 0.0, 1.0) * 255.0 for level, width in windows], axis=-1)
    y0, x0, side = square
    canvas = np.zeros((side, side, unit.shape[-1]), dtype=np.float64)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + side, hu.shape[0]), min(x0 + side, hu.shape[1])
    canvas[ys - y0 : ye - y0, xs - x0 : xe - x0] = unit[ys:ye, xs:xe]
    small = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA) if side != size else canvas
    return np.floor(small.reshape(size, size, -1) + 0.5).astype(np.uint8)


def rsna_files() -> list[Path]:
    """The real sample slices (train and test), or a skip when the folder is absent."""
    files = sorted(RSNA.glob("stage_2_*_images/*.dcm"))
    if not files:
        pytest.skip("real RSNA sample data not present (../shared/data/rsna)")
    return files


@pytest.fixture
def make_ct() -> Callable[..., bytes]:
    """The DICOM writer: ``make_ct(raw, **header) -> bytes`` (see ``ct_bytes``)."""
    return ct_bytes


@pytest.fixture
def write_ct(tmp_path: Path) -> Callable[..., Path]:
    """``write_ct(path_or_name, raw, **header) -> Path``: a generated slice written to disk (relative names go under tmp_path)."""

    def write(path: Path | str, raw: np.ndarray, **header) -> Path:
        target = Path(path) if Path(path).is_absolute() else tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ct_bytes(raw, **header))
        return target

    return write


@pytest.fixture
def real_files() -> list[Path]:
    """Every real sample slice; skips when ../shared/data/rsna is absent."""
    return rsna_files()


@pytest.fixture
def ct_small() -> Path:
    """pydicom's bundled CT_small.dcm (128 x 128, int16, explicit VR)."""
    return Path(pydicom.data.get_testdata_file("CT_small.dcm"))


@pytest.fixture
def reference() -> Reference:
    """The independent reference math (window formula, resampled reference)."""
    return Reference()


class Reference:
    """Namespace handed to tests by the ``reference`` fixture."""

    windows = DEFAULT_WINDOWS
    window_u8 = staticmethod(window_u8)
    resampled = staticmethod(resampled_reference)


def phantom_hu(
    shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float], table_row: int | None = None, ring: bool = False
) -> np.ndarray:
    """A synthetic head slice in HU: air, an ellipse of brain (35 HU) in a bone rim, optionally a table line and an FOV ring."""
    hu = np.full(shape, -1000.0, dtype=np.float32)
    cy, cx = centre
    ay, ax = axes
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
    hu[r <= 1.0] = 1000.0
    hu[r <= 0.8] = 35.0
    if table_row is not None:
        hu[table_row : table_row + 2, :] = 200.0
    if ring:
        rr = np.hypot(yy - (shape[0] - 1) / 2, xx - (shape[1] - 1) / 2)
        radius = min(shape) / 2 - 2
        hu[(rr >= radius - 1) & (rr <= radius)] = 300.0
    return hu


@pytest.fixture
def phantom() -> Callable[..., np.ndarray]:
    """``phantom(shape, centre, axes, table_row=None, ring=False) -> HU array`` (see ``phantom_hu``)."""
    return phantom_hu


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread: on two shared cores, two OpenMP threads spin-wait and run several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

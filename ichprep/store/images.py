"""One PNG or JPEG file per slice: the writing side (a sink) and the reading side (a store).

JPEG is written with 4:4:4 chroma sampling: the three channels are three different windows,
and the default 4:2:0 subsampling would blur them into each other at half resolution. Every
file is written atomically inside the output folder, so a task needs no commit or rollback.

PNG is written here rather than by OpenCV: every row with the 'up' filter, one zlib stream at
level 1. Deflate is nearly all of a PNG's cost, and OpenCV's libpng uses the system zlib; with
ISA-L's deflate (the ``isal`` package) a 256 px slice encodes about three times as fast and a
little smaller. Without ``isal`` the standard zlib is used, with the run-length strategy that
measured fastest (about OpenCV's speed). Either way any PNG reader decodes the exact pixels.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ichprep import atomic, layout

try:
    from isal import isal_zlib
except ImportError:  # isal is a dependency, but a platform without its wheels still gets PNGs
    isal_zlib = None

EXTENSIONS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}
DEFAULT_QUALITY = 95
PNG_LEVEL = 1
"""Deflate level of PNG files. Measured on the real slices at 256 px (CPU ms, KB per image): OpenCV
(zlib 1.2, level 1, run-length, 'up') 1.14 ms, 64.8 KB; ISA-L level 1, 'up' 0.37 ms, 63.6 KB;
ISA-L level 2 saves 1 % more for the same time, zlib level 1 without run-length is 30 % slower."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}
"""PNG colour type by channel count: greyscale, RGB, RGBA (8 bits each)."""
UP_FILTER = 2


def encode(image: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an RGB (or single-channel) uint8 image as PNG or 4:4:4 JPEG bytes."""
    bgr = image[..., ::-1] if image.ndim == 3 else image
    return encode_bgr(bgr, fmt, quality)


def encode_bgr(bgr: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an image already in OpenCV's BGR channel order."""
    ext = EXTENSIONS[fmt]
    if ext == "png":
        return png_bytes(_png_order(bgr))
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(f".{ext}", np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} image as {ext}")
    return buf.tobytes()


def _png_order(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / BGRA channels in PNG's RGB / RGBA order, contiguous (OpenCV swaps them fastest)."""
    if bgr.ndim == 3 and bgr.shape[2] == 3:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if bgr.ndim == 3 and bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA)
    return bgr


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file of a uint8 (H, W) or (H, W, C) image whose channels are in PNG's order (grey, RGB, RGBA).

    Every scanline uses the 'up' filter (PNG spec 9.2; the row above the first is zeros), then
    one zlib stream in one IDAT chunk.
    """
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype != np.uint8 or channels not in PNG_COLOUR_TYPES or 0 in pixels.shape:
        raise ValueError(f"cannot write a {pixels.dtype} image of shape {pixels.shape} as PNG")
    height, width = pixels.shape[:2]
    lines = np.ascontiguousarray(pixels).reshape(height, width * channels)
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = UP_FILTER
    rows[0, 1:] = lines[0]
    np.subtract(lines[1:], lines[:-1], out=rows[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", _deflate(rows)) + _chunk(b"IEND", b"")


def _deflate(data: np.ndarray) -> bytes:
    """One zlib stream of ``data``: ISA-L's deflate when installed, else zlib's run-length strategy."""
    if isal_zlib is not None:
        return isal_zlib.compress(data, PNG_LEVEL)
    packer = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_RLE)
    return packer.compress(data) + packer.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type and data (ISA-L's CRC is the faster one)."""
    crc32 = (isal_zlib or zlib).crc32
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc32(data, crc32(kind)))


def decode(data: bytes) -> np.ndarray:
    """Encoded bytes back to an RGB uint8 image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a decodable image")
    return image[..., ::-1] if image.ndim == 3 else image


@dataclass(frozen=True)
class ImageFiles:
    """The sink that writes ``OUT/<id>.<ext>``; ids are validated by the caller to be plain file names.

    Small and picklable, it travels to the workers as it is: each file is complete when renamed
    into place, so ``open`` returns the sink itself and ``close``/``abort`` have nothing to do.
    """

    out: str
    fmt: str
    quality: int = DEFAULT_QUALITY
    bgr: bool = True

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.fmt]

    def open(self, number: int, capacity: int) -> ImageFiles:
        return self

    def write(self, image_id: str, bgr_image: np.ndarray, labels: np.ndarray | None = None) -> tuple[str, int | None]:
        """Encode and write one image; returns its file name relative to OUT (and no row)."""
        name = f"{image_id}.{self.ext}"
        atomic.write_bytes(Path(self.out) / name, encode_bgr(bgr_image, self.fmt, self.quality))
        return name, None

    def close(self) -> None:
        """Nothing to commit: every file was renamed into place when written."""

    def abort(self) -> None:
        """Nothing to drop: only complete files were ever renamed into place."""


class ImageFolder:
    """The store of a folder of ``<id>.png|jpg``, read with OpenCV as RGB uint8 (H, W, 3)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        files = layout.images(self.root)
        self.ids: list[str] = [p.stem for p in files]
        self._names: list[str] = [p.name for p in files]

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, index: int) -> np.ndarray:
        return decode((self.root / self._names[index]).read_bytes())

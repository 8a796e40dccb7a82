"""One PNG or JPEG file per slice: the writing side (a sink) and the reading side (a store).

JPEG is written with 4:4:4 chroma sampling: the three channels are three different windows,
and the default 4:2:0 subsampling would blur them into each other at half resolution. Every
file is written atomically inside the output folder, so a task needs no commit or rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ichprep import atomic, layout

EXTENSIONS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}
DEFAULT_QUALITY = 95
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP)
"""zlib level 1, run-length strategy, 'up' filter: measured the fastest PNG encoding of these images
(about 10 % faster than OpenCV's default and 6 % smaller); level 3 saves only 4 % more for twice the time."""


def encode(image: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an RGB (or single-channel) uint8 image as PNG or 4:4:4 JPEG bytes."""
    bgr = image[..., ::-1] if image.ndim == 3 else image
    return encode_bgr(np.ascontiguousarray(bgr), fmt, quality)


def encode_bgr(bgr: np.ndarray, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode an image already in OpenCV's BGR channel order."""
    ext = EXTENSIONS[fmt]
    if ext == "jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    else:
        params = list(PNG_PARAMS)
    ok, buf = cv2.imencode(f".{ext}", bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {bgr.shape} image as {ext}")
    return buf.tobytes()


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

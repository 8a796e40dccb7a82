"""The loops users write instead of ichprep, each runnable as its own process.

Two peers turn every slice of a folder (or every member of a zip, read with ``zipfile``) into a
3-channel (brain, subdural, bone) 256 px image with ``cv2.imwrite``'s default settings:

- ``kernels``: the loop of the public RSNA kernels as users copy it: HU in float32, three
  ``np.clip`` windows at full size, each channel resized with ``cv2.resize``'s default
  interpolation (INTER_LINEAR), stacked and scaled to uint8.
- ``float64-area``: the loop ``peers.py`` has always measured: HU in float64 (``pixel_array *
  float(slope)``), three windows at full size, stacked, one ``cv2.resize(INTER_AREA)``.

Imports only pydicom, numpy and OpenCV, so a process's start-up is what such a script pays. The
loop bodies are written inline, as in the kernels: each slice's arrays then live until the next
slice's replace them. Moved into a function returning the image, the same code measured up to
three times slower, because freeing every megabyte array at once let the C allocator hand the
memory back and fault it in again for each slice; a peer must not be slowed by such an accident.

    python benchmarks/plain_loops.py kernels SRC OUT jpg     # SRC: a folder of .dcm or a .zip
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pydicom

WINDOWS = ((40, 80), (80, 200), (600, 2800))
"""(level, width) of the R, G, B channels: ichprep's default brain, subdural, bone."""
SIZE = 256


def datasets(src: Path) -> Iterator[tuple[str, pydicom.Dataset]]:
    """(stem, parsed file) of every slice of a folder, or of every member of a zip read with zipfile."""
    if src.is_dir():
        for path in sorted(src.glob("*.dcm")):
            yield path.stem, pydicom.dcmread(path)
        return
    with zipfile.ZipFile(src) as archive:
        for name in archive.namelist():
            yield Path(name).stem, pydicom.dcmread(io.BytesIO(archive.read(name)))


def kernels(src: Path, out: Path, ext: str) -> None:
    """The kernels' loop: float32 HU, np.clip per window at full size, per-channel default (INTER_LINEAR) resize."""
    for stem, ds in datasets(src):
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        channels = []
        for level, width in WINDOWS:
            low = level - width / 2
            unit = (np.clip(hu, low, low + width) - low) / width
            channels.append(cv2.resize(unit, (SIZE, SIZE)))
        image = (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)
        cv2.imwrite(str(out / f"{stem}.{ext}"), image)


def float64_area(src: Path, out: Path, ext: str) -> None:
    """``peers.py``'s loop: float64 HU, three windows at full size, stacked, one INTER_AREA resize."""
    for stem, ds in datasets(src):
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        channels = [np.clip((hu - (level - width / 2)) / width, 0, 1) for level, width in WINDOWS]
        image = (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)
        cv2.imwrite(str(out / f"{stem}.{ext}"), cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA))


PEERS: dict[str, Callable[[Path, Path, str], None]] = {"kernels": kernels, "float64-area": float64_area}


if __name__ == "__main__":
    name, source, target, extension = sys.argv[1:5]
    Path(target).mkdir(parents=True, exist_ok=True)
    PEERS[name](Path(source), Path(target), extension)

"""The loops users write instead of ichprep, each runnable as its own process.

Two peers turn every slice of a folder (or every member of a zip, read with ``zipfile``) into a
3-channel (brain, subdural, bone) 256 px image with ``cv2.imwrite``'s default settings:

- ``kernels``: the loop of the public RSNA kernels as users copy it: HU in float32, three
  ``np.clip`` windows at full size, each channel resized with ``cv2.resize``'s default
  interpolation (INTER_LINEAR), stacked and scaled to uint8.
- ``float64-area``: the loop ``peers.py`` has always measured: HU in float64 (``pixel_array *
  float(slope)``), three windows at full size, stacked, one ``cv2.resize(INTER_AREA)``.

Imports only pydicom, numpy and OpenCV, so a process's start-up is what such a script pays.

    python benchmarks/plain_loops.py kernels SRC OUT jpg     # SRC: a folder of .dcm or a .zip
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pydicom

WINDOWS = ((40, 80), (80, 200), (600, 2800))
"""(level, width) of the R, G, B channels: ichprep's default brain, subdural, bone."""
SIZE = 256


def kernels_image(ds: pydicom.Dataset) -> np.ndarray:
    """BGR uint8 image as the kernels make it: float32 HU, np.clip per window, per-channel default resize."""
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    channels = []
    for level, width in WINDOWS:
        low = level - width / 2
        unit = (np.clip(hu, low, low + width) - low) / width
        channels.append(cv2.resize(unit, (SIZE, SIZE)))
    return (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)


def float64_area_image(ds: pydicom.Dataset) -> np.ndarray:
    """BGR uint8 image in float64 with one area resize of the stacked channels (``peers.py``'s loop)."""
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    channels = [np.clip((hu - (level - width / 2)) / width, 0, 1) for level, width in WINDOWS]
    image = (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)
    return cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


PEERS: dict[str, Callable[[pydicom.Dataset], np.ndarray]] = {"kernels": kernels_image, "float64-area": float64_area_image}


def datasets(src: Path) -> Iterator[tuple[str, pydicom.Dataset]]:
    """(stem, parsed file) of every slice of a folder, or of every member of a zip read with zipfile."""
    if src.is_dir():
        for path in sorted(src.glob("*.dcm")):
            yield path.stem, pydicom.dcmread(path)
        return
    with zipfile.ZipFile(src) as archive:
        for name in archive.namelist():
            yield Path(name).stem, pydicom.dcmread(io.BytesIO(archive.read(name)))


def run(peer: str, src: Path, out: Path, ext: str) -> int:
    """Convert every slice of ``src`` into ``out/<stem>.<ext>``; returns how many were written."""
    make = PEERS[peer]
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for stem, ds in datasets(src):
        cv2.imwrite(str(out / f"{stem}.{ext}"), make(ds))
        count += 1
    return count


if __name__ == "__main__":
    name, source, target, extension = sys.argv[1:5]
    run(name, Path(source), Path(target), extension)

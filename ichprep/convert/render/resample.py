"""Downscaling a cropped slice: two backends behind one interface, each saying whether it is available.

The renderer looks every stored value up once in a table of packed channel words (``render``);
what is left is the area downscale of the crop to the output size, the one step that costs most.

``kernel``: ``_area`` (``_area.c``, compiled at install where a C compiler exists) looks up,
resamples and rounds in one pass over rows that stay in cache. OpenCV's area resize for a
non-integer factor is a scalar loop over a gathered copy of the crop: 0.6 ms of a slice's
1.2 ms, where the kernel takes 0.16 ms. The kernel picks its instruction set at run time; AVX2 is
kept beside SSE2 because it pays (``benchmarks/resample_isa.py``: 5 to 30 % faster a slice on
the loaded 2-core development machine), and its plain-C form is slower than OpenCV, so without
SSE2 the kernel counts as unavailable.

``opencv``: gathers the 8.8 fixed-point words of the crop and area-resizes them as four 16-bit
lanes (OpenCV's fastest area resize), then rounds to uint8.

Both agree with the float reference within one grey level; the tests hold each to it.
``pick()`` takes the first available in ``ORDER``, or the one named by ``ICHPREP_RESAMPLER``
(how the tests, and a user comparing them, choose).
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

import cv2
import numpy as np

from ichprep.convert.render import geometry
from ichprep.errors import IchprepError
from ichprep.windows import fixed16_to_uint8

try:
    from ichprep.convert.render import _area
except ImportError:  # not compiled: the install found no C compiler (see pyproject.toml)
    _area = None

SLOTS = 4
"""Channels packed per pixel word: up to four windows."""
ENV = "ICHPREP_RESAMPLER"
"""The environment variable that names the backend to use (``kernel`` or ``opencv``) instead of the first available."""


class Resampler(Protocol):
    """Resamples the crop ``square`` of a slice's table indices to ``size`` x ``size`` x ``channels`` uint8."""

    name: str

    def available(self) -> bool:
        """Whether this backend can run here."""

    def describe(self) -> str:
        """How ``ichprep --version`` names it."""

    def resample(self, index: np.ndarray, table: np.ndarray, lowest: int, square: geometry.Square, size: int,
                 channels: int) -> np.ndarray:
        """``index`` holds table positions (the slice's stored values), ``table`` their 8.8 words, ``lowest``
        the position padding takes (outside the slice is darker than anything in it)."""


class Kernel:
    """The compiled one-pass look-up, area resize and rounding (``_area.c``)."""

    name = "kernel"
    ISAS = {1: "SSE2", 2: "AVX2"}
    """The kernel's instruction sets by ``_area.best_isa()``; 0 (plain C) is slower than OpenCV."""

    def available(self) -> bool:
        return _area is not None and _area.best_isa() in self.ISAS

    def describe(self) -> str:
        return f"compiled kernel ({self.ISAS[_area.best_isa()]})"

    def resample(self, index: np.ndarray, table: np.ndarray, lowest: int, square: geometry.Square, size: int,
                 channels: int) -> np.ndarray:
        """A downscale (the kernel does no other): the renderer sends upscales to OpenCV."""
        image = np.empty((size, size, channels), dtype=np.uint8)
        _area.area(np.ascontiguousarray(index), table, int(table[lowest]), *square, size, channels, image)
        return image


class OpenCV:
    """Gather the crop's words, area-resize their four 16-bit lanes with OpenCV, round to uint8."""

    name = "opencv"

    def __init__(self) -> None:
        self._scratch = Scratch()

    def available(self) -> bool:
        return True

    def describe(self) -> str:
        return "OpenCV"

    def resample(self, index: np.ndarray, table: np.ndarray, lowest: int, square: geometry.Square, size: int,
                 channels: int) -> np.ndarray:
        scratch = self._scratch
        index = geometry.crop_pad(index, square, lowest, out=scratch.array("index", (square.side, square.side), index.dtype))
        words = scratch.array("words", index.shape, table.dtype)
        np.take(table, index, out=words, mode="clip")  # every index is in the table: 'clip' is only numpy's fast path
        return shrink(unpack(words, exact=False), size, channels, scratch)


def shrink(lanes: np.ndarray, size: int, channels: int, scratch: Scratch) -> np.ndarray:
    """8.8 lanes (H, W, SLOTS) area-resized to ``size`` by OpenCV and rounded: the first ``channels`` as uint8."""
    resized = resize_area(lanes, size, out=scratch.array("resized", (size, size, SLOTS), lanes.dtype))
    return first_channels(fixed16_to_uint8(resized, out=scratch.array("lanes", resized.shape, np.uint8)), channels)


def resize_area(image: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Area-interpolated resize to ``size`` x ``size`` (the identity when already that size), into ``out`` if given."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(np.ascontiguousarray(image), (size, size), dst=out, interpolation=cv2.INTER_AREA)


def unpack(words: np.ndarray, exact: bool) -> np.ndarray:
    """Words back to (H, W, SLOTS) lanes: uint8 for exact words, 8.8 fixed-point otherwise."""
    return words.view(np.uint8 if exact else np.uint16).reshape(words.shape + (SLOTS,))


def first_channels(lanes: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` lanes as a new contiguous image (OpenCV's channel drop is several times numpy's speed)."""
    if count == 4:
        return lanes.copy()
    if count == 3:
        return cv2.cvtColor(lanes, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(lanes[..., :count])


class Scratch(threading.local):
    """Buffers a thread reuses from slice to slice for the intermediate images.

    Why: a slice's intermediates are megabytes (the gathered words of a 512 x 512 slice are
    2 MB, and ``np.take`` makes as large an index copy). Allocating and freeing them for every
    slice lets the C allocator hand that memory back to the system and fault it in again, which
    measured 1.5 ms a slice on the no-crop path, more than the rendering itself.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised ``shape`` array of ``dtype`` over the buffer called ``name``, grown as needed."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < nbytes:
            buffer = self.buffers[name] = np.empty(nbytes, dtype=np.uint8)
        return buffer[:nbytes].view(dtype).reshape(shape)


BACKENDS: dict[str, Resampler] = {"kernel": Kernel(), "opencv": OpenCV()}
ORDER: tuple[str, ...] = ("kernel", "opencv")
"""The backends by name, and the order ``pick`` tries them in: fastest first."""


def pick(name: str | None = None) -> Resampler:
    """The backend called ``name`` (else ``$ICHPREP_RESAMPLER``), or the first available; a named one must be available."""
    name = name or os.environ.get(ENV) or None
    if name is None:
        return next(BACKENDS[n] for n in ORDER if BACKENDS[n].available())
    if name not in BACKENDS:
        raise IchprepError(f"{ENV}={name!r}: choose one of {', '.join(ORDER)}")
    if not BACKENDS[name].available():
        raise IchprepError(f"{ENV}={name!r}: not available here (the kernel needs a C compiler at install and SSE2)")
    return BACKENDS[name]

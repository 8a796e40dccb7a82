"""Windows, the one shape of a channel everywhere, and the pixel math that maps Hounsfield units to display values.

Pure numpy, no I/O. A *channel* (``Window`` or fastai's ``FreqHist``) maps an HU array to floats in
[0, 1]; ``to_uint8`` turns those into grey levels. ``--windows`` is parsed once, where a
``Settings`` is made, into a tuple of channels; the renderer, the run and the settings file all use
that tuple (``describe``/``from_description`` are its JSON form). The renderer evaluates channels
once per distinct stored value (a lookup table), so these functions must be exact and vectorised,
never fast-and-loose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Channel(Protocol):
    """Anything that maps HU to [0, 1] and can describe itself for the settings file."""

    name: str

    def unit(self, hu: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict: ...

    def summary(self) -> str: ...


@dataclass(frozen=True)
class Window:
    """A linear window: clip((HU - (level - width/2)) / width, 0, 1)."""

    name: str
    level: float
    width: float

    def unit(self, hu: np.ndarray) -> np.ndarray:
        lo = self.level - self.width / 2.0
        return np.clip((np.asarray(hu, dtype=np.float64) - lo) / self.width, 0.0, 1.0)

    def describe(self) -> dict:
        return {"name": self.name, "kind": "window", "level": self.level, "width": self.width}

    def summary(self) -> str:
        """``brain 40/80``; a window given as ``LEVEL/WIDTH`` is named by those numbers, shown once."""
        numbers = f"{self.level:g}/{self.width:g}"
        return numbers if self.name == numbers else f"{self.name} {numbers}"


@dataclass(frozen=True)
class FreqHist:
    """fastai's histogram-equalised full range: piecewise-linear over sample quantiles.

    No ``breaks`` yet: the preset as asked for, before ``convert.run.plan`` samples them from the data.
    """

    name: str
    breaks: tuple[float, ...]

    def unit(self, hu: np.ndarray) -> np.ndarray:
        ys = np.linspace(0.0, 1.0, len(self.breaks))
        return np.clip(np.interp(np.asarray(hu, dtype=np.float64), self.breaks, ys), 0.0, 1.0)

    def describe(self) -> dict:
        return {"name": self.name, "kind": "freqhist", "breaks": list(self.breaks)}

    def summary(self) -> str:
        """``freqhist (101 breakpoints -1024..3071, sum 2.5e+04)``: enough to tell two samples apart."""
        b = self.breaks
        return f"{self.name} ({len(b)} breakpoints {b[0]:g}..{b[-1]:g}, sum {sum(b):.6g})"


PRESETS: dict[str, Window] = {
    "brain": Window("brain", 40, 80),
    "subdural": Window("subdural", 80, 200),
    "bone": Window("bone", 600, 2800),
    "soft": Window("soft", 40, 380),
    "stroke": Window("stroke", 32, 8),
    "fastai_subdural": Window("fastai_subdural", 100, 254),
}
"""Named windows as (level, width). fastai writes (width, level): its subdural is W254/L100."""

DEFAULT_WINDOWS = "brain,subdural,bone"
FASTAI = "fastai"
"""Jeremy's JPG channels: brain, fastai's subdural, histogram-equalised full range."""

_PAIR = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_windows(spec: str) -> tuple[Channel, ...]:
    """Parse ``--windows``: names or ``LEVEL/WIDTH`` pairs, or the ``fastai`` preset.

    The ``fastai`` preset's third channel has no breakpoints yet: they are sampled from the data
    (``convert.run.plan``). Raises ValueError with the offending item for anything else.
    """
    if spec.strip().lower() == FASTAI:
        return fastai_channels(())
    windows: list[Window] = []
    for item in spec.split(","):
        item = item.strip()
        if item.lower() in PRESETS:
            windows.append(PRESETS[item.lower()])
            continue
        match = _PAIR.match(item)
        if not match:
            names = ", ".join(PRESETS)
            raise ValueError(f"unknown window {item!r}: use a name ({names}) or LEVEL/WIDTH such as 40/80")
        level, width = float(match.group(1)), float(match.group(2))
        if width <= 0:
            raise ValueError(f"window {item!r} has width {width}: it must be positive")
        windows.append(Window(f"{level:g}/{width:g}", level, width))
    if not 1 <= len(windows) <= 4:
        raise ValueError(f"{len(windows)} windows given: 1 to 4 are supported")
    return tuple(windows)


def fastai_channels(breaks: Sequence[float]) -> tuple[Channel, ...]:
    """The ``fastai`` preset with these freqhist breakpoints (none: not sampled yet)."""
    return PRESETS["brain"], PRESETS["fastai_subdural"], FreqHist("freqhist", tuple(float(b) for b in breaks))


def is_fastai(channels: Sequence[Channel]) -> bool:
    """Whether ``channels`` are the fastai preset, sampled or not (only it has a histogram channel)."""
    return any(isinstance(c, FreqHist) for c in channels)


def unsampled(channels: Sequence[Channel]) -> bool:
    """Whether the fastai preset's breakpoints are still to be sampled: channels asked for, not yet a run's."""
    return any(isinstance(c, FreqHist) and not c.breaks for c in channels)


def spec_of(channels: Sequence[Channel]) -> str:
    """The ``--windows`` value these channels were made from, as the settings file records it."""
    return FASTAI if is_fastai(channels) else ",".join(c.name for c in channels)


def freqhist_breaks(hu: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """fastai's ``freqhist_bins``: values at the 0.1 %, 0.5 %, 1.5 %, ..., 99.5 %, 99.9 % ranks, deduplicated.

    Ranks are taken as ``sorted[int(n * q)]`` exactly as fastai indexes its sorted tensor,
    in torch's float32 arithmetic (float64 picks a neighbouring rank for some sample sizes),
    so the same sample gives the same breakpoints as Jeremy's ``bins.pkl``.
    """
    flat = np.sort(np.asarray(hu, dtype=np.float64).ravel())
    middle = np.arange(n_bins, dtype=np.float32) / np.float32(n_bins) + np.float32(1 / (2 * n_bins))
    qs = np.concatenate([np.float32([0.001]), middle, np.float32([0.999])])
    idx = (np.float32(len(flat)) * qs).astype(np.int64)
    return np.unique(flat[idx])


def channel_stack(channels: Sequence[Channel], hu: np.ndarray) -> np.ndarray:
    """Evaluate every channel on ``hu``; result has a trailing channel axis, values in [0, 1]."""
    return np.stack([c.unit(hu) for c in channels], axis=-1)


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """Grey level = floor(v * 255 + 0.5): round half up, the rule every output follows."""
    return np.floor(np.asarray(unit, dtype=np.float64) * 255.0 + 0.5).astype(np.uint8)


def to_fixed16(unit: np.ndarray) -> np.ndarray:
    """Grey level with 8 fractional bits (v * 255 * 256, rounded), for resampling before rounding."""
    return np.floor(np.asarray(unit, dtype=np.float64) * 65280.0 + 0.5).astype(np.uint16)


def fixed16_to_uint8(fixed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Round 8.8 fixed-point grey levels to uint8 (exact halves to even: OpenCV's rounding, one pass in C), into ``out`` if given."""
    import cv2

    return cv2.convertScaleAbs(fixed, dst=out, alpha=1.0 / 256.0)


def from_description(described: Sequence[dict]) -> tuple[Channel, ...]:
    """Channels back from the settings file (the inverse of ``describe``), its numbers as written.

    A level read as 40 stays 40 (not 40.0): a folder's settings saved again are the same bytes.
    """
    channels: list[Channel] = []
    for item in described:
        if item.get("kind") == "freqhist":
            channels.append(FreqHist(item["name"], tuple(float(b) for b in item["breaks"])))
        else:
            channels.append(Window(item["name"], item["level"], item["width"]))
    return tuple(channels)

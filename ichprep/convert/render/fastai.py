"""The fastai preset's breakpoints: sampled from a run's inputs, or the ones its settings already hold.

Jeremy Howard's third channel equalises the histogram over breakpoints taken from the data
(``windows.freqhist_breaks``). Until they are known, the preset's ``FreqHist`` has none; a run
samples them once from slices spread over all its inputs, a resumed run reuses its folder's (so it
renders exactly as before), and ``predict`` renders new DICOMs with its model's (given settings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ichprep.convert import sources
from ichprep.errors import IchprepError
from ichprep.settings import Settings
from ichprep.windows import fastai_channels, freqhist_breaks, is_fastai, unsampled

FREQHIST_SAMPLE = 32
"""Slices pooled for the fastai preset's breakpoints (Jeremy used a small sample too)."""


def resolve(settings: Settings, source: sources.Source, inputs: Sequence[sources.Input] | Iterator[sources.Input],
            previous: Settings | None) -> Settings:
    """``settings`` ready to render: the fastai preset's breakpoints sampled from ``inputs``, or ``previous``'s reused."""
    if not unsampled(settings.channels):
        return settings
    if previous is not None and is_fastai(previous.channels):
        return settings.resolved(previous.channels)
    if not isinstance(inputs, Sequence):
        raise IchprepError(f"--windows fastai takes its breakpoints from slices spread over all the inputs, and {source.name} "
                           "is a stream, read once front to back: give the zip's URL or file instead")
    return settings.resolved(fastai_channels(sample_breaks(source, inputs)))


def sample_breaks(source: sources.Source, inputs: Sequence[sources.Input], n: int = FREQHIST_SAMPLE) -> np.ndarray:
    """fastai freqhist breakpoints from HU pooled over up to ``n`` evenly spaced readable slices."""
    from ichprep.convert.read import dicom

    picks = [inputs[int(i)] for i in np.linspace(0, len(inputs) - 1, min(n, len(inputs)))] if inputs else []
    pooled = []
    for _, data in source.read(picks):
        try:
            if isinstance(data, Exception):
                continue
            pooled.append(dicom.read(data).decode().hu()[::2, ::2].ravel())
        except Exception:  # an unreadable sample slice is simply not pooled; the run reports it later
            continue
    if not pooled:
        raise IchprepError("the fastai preset needs at least one readable slice to compute its breakpoints")
    return freqhist_breaks(np.concatenate(pooled))

"""The baseline any user could build by hand: the CNN's probabilities smoothed along each series.

A second stage has to beat this, not just the CNN alone, to show it learned more than "neighbours
agree". The kernel is fixed (1, 2, 1) / 4 with the edge slice repeated, not fitted to any data.
"""

from __future__ import annotations

import numpy as np

KERNEL = np.array([0.25, 0.5, 0.25])


def smoothed(probs: np.ndarray, groups: list[np.ndarray], kernel: np.ndarray = KERNEL) -> np.ndarray:
    """``probs`` (N, 6) with each series' rows (``groups``: row indices in slice order) convolved with ``kernel``."""
    out = probs.copy()
    half = len(kernel) // 2
    for rows in groups:
        padded = np.concatenate([probs[rows[:1]].repeat(half, 0), probs[rows], probs[rows[-1:]].repeat(half, 0)])
        out[rows] = sum(w * padded[k : k + len(rows)] for k, w in enumerate(kernel))
    return out

"""The names of the choices a network's input is made with, importable without torch.

The command line checks ``--stack``, ``--norm`` and ``--tta`` against these before torch loads, so
a typo costs a second; the dataset, the normalisation and inference use the same names.
"""

from __future__ import annotations

STACKS: tuple[str, ...] = ("windows", "2.5d")
"""How an item is made of its slices: every window of 2K + 1 slices, or the first window of three slices."""

NORMS: tuple[str, ...] = ("auto", "pretrained", "data")
"""--norm: the pretrained config's mean/std (what the ImageNet weights were trained on), the data's
(0.6 / 0.25 for these windows), or auto: the pretrained one exactly when the run starts from trained weights."""

TTA_VIEWS: tuple[str, ...] = ("hflip", "vflip", "transpose")
"""Test-time views of a square image: left-right and top-bottom mirror, and the transposition the
2nd place of 2019 averaged with hflip."""

"""The names of the choices a network and its input are made with, importable without torch.

The command line checks ``--stack``, ``--norm`` and ``--tta`` against these before torch loads, so
a typo costs a second; the dataset, the normalisation and inference use the same names.
"""

from __future__ import annotations

from ichprep.errors import IchprepError

STACKS: tuple[str, ...] = ("windows", "2.5d")
"""How an item is made of its slices: every window of 2K + 1 slices, or the first window of three slices."""

NORMS: tuple[str, ...] = ("auto", "pretrained", "data")
"""--norm: the pretrained config's mean/std (what the ImageNet weights were trained on), the data's
(0.6 / 0.25 for these windows), or auto: the pretrained one exactly when the run starts from trained weights."""

TTA_VIEWS: tuple[str, ...] = ("hflip", "vflip", "transpose")
"""Test-time views of a square image: left-right and top-bottom mirror, and the transposition the
2nd place of 2019 averaged with hflip."""

SPACING_MM: float = 5.0
"""The competition's usual slice spacing: the sequence model reads gaps in this unit (a typical one is 1), and a
slice whose position is unknown is placed this far from the last."""

CELLS: tuple[str, ...] = ("gru", "lstm")
"""The recurrent layer of a second stage's sequence model (``models.series_net``)."""


def views(text: str | None, option: str = "--tta") -> tuple[str, ...]:
    """Comma-separated views, each one of ``TTA_VIEWS``; ``none`` or nothing for none."""
    chosen = tuple(v.strip() for v in (text or "").split(",") if v.strip() and v.strip() != "none")
    unknown = [v for v in chosen if v not in TTA_VIEWS]
    if unknown:
        raise IchprepError(f"{option} {text!r}: unknown view {unknown[0]!r}; choose from {', '.join(TTA_VIEWS)}")
    return chosen

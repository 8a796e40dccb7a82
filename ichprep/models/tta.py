"""The views of a square image on a batch (N, C, H, W): the flips training draws and the views TTA averages over.

One table serves both, so a view TTA asks for is, by construction, a transformation training can
apply; ``unseen`` names the views a model's training never showed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ichprep.models.inputs import TTA_VIEWS

VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(zip(TTA_VIEWS, (
    lambda x: torch.flip(x, dims=[3]),
    lambda x: torch.flip(x, dims=[2]),
    lambda x: x.transpose(2, 3),
)))
"""Each of ``models.inputs.TTA_VIEWS`` on a batch. The images are square, so every view keeps the shape."""


def with_views(tta: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform putting the batch and each of its ``tta`` views one after the other: all views in one forward pass."""
    return lambda x: torch.cat([x, *(VIEWS[name](x) for name in tta)])

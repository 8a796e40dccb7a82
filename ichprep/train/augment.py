"""Batch augmentation on the training device: flips, transposition, and a shift-scale-rotate, in one resample.

Why on the batch and on the device: two CPU cores cannot keep a GPU busy if every image is
warped in a worker; one affine_grid/grid_sample per batch costs the GPU next to nothing.
Randomness comes from an explicit generator so a seeded run (and a resumed one) is reproducible.

Each image draws each of its ``flips`` (``models.tta.VIEWS``: hflip, vflip, transpose) with
probability 0.5, and with probability ``p`` a shift-scale-rotate (albumentations' ShiftScaleRotate,
as the 2019 winners used it): rotation up to ``rotate`` degrees, scale by up to ``scale``, shift by
up to ``shift`` of the side. The flips are exact permutations of the pixels, so the views TTA
averages over are, for a model trained with them, views it has seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentOptions:
    """The random transform: the flips drawn, and the shift-scale-rotate's ranges (degrees, fractions) and probability."""

    flips: tuple[str, ...] = ("hflip", "vflip")
    rotate: float = 15.0
    scale: float = 0.1
    shift: float = 0.05
    p: float = 1.0


def _uniform(n: int, bound: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) * 2 - 1) * bound


def _coin(n: int, on: bool, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """A fair coin per image where ``on``, else all False (nothing drawn, so other draws keep their values)."""
    return torch.rand(n, generator=g, device=device) < 0.5 if on else torch.zeros(n, dtype=torch.bool, device=device)


def random_affine(n: int, options: AugmentOptions, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices in affine_grid's normalised coordinates: flips and transposition, then
    rotate/scale, then shift, the shift-scale-rotate applied to a ``p`` share of the images."""
    angle = _uniform(n, math.radians(options.rotate), g, device)
    scale = 1 + _uniform(n, options.scale, g, device)
    fx = torch.where(_coin(n, "hflip" in options.flips, g, device), -1.0, 1.0)
    fy = torch.where(_coin(n, "vflip" in options.flips, g, device), -1.0, 1.0)
    swap = _coin(n, "transpose" in options.flips, g, device)
    shift = torch.stack([_uniform(n, 2 * options.shift, g, device), _uniform(n, 2 * options.shift, g, device)], dim=1)
    if options.p < 1:
        off = torch.rand(n, generator=g, device=device) >= options.p
        angle, scale, shift = angle.masked_fill(off, 0.0), scale.masked_fill(off, 1.0), shift.masked_fill(off[:, None], 0.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * fx, -sin * fy
    theta[:, 1, 0], theta[:, 1, 1] = sin * fx, cos * fy
    theta[swap, :, :2] = theta[swap][:, :, [1, 0]]
    theta[:, :, 2] = shift
    return theta


def augment(x: torch.Tensor, g: torch.Generator, options: AugmentOptions = AugmentOptions()) -> torch.Tensor:
    """Warp every image of the batch (N, C, H, W) by its own random transform.

    Borders are filled by replicating the edge (CT backgrounds are air, so the edge is background),
    which keeps the normalised intensities free of an artificial constant.
    """
    theta = random_affine(x.shape[0], options, g, x.device).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

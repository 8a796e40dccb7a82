"""Batch augmentation on the training device: flips, rotation and a small affine, in one resample.

Why on the batch and on the device: two CPU cores cannot keep a GPU busy if every image is
warped in a worker; one affine_grid/grid_sample per batch costs the GPU next to nothing.
Randomness comes from an explicit generator so a seeded run (and a resumed one) is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentOptions:
    """Ranges of the random transform; rotation in degrees, scale and shift as fractions of the image."""

    hflip: bool = True
    vflip: bool = True
    rotate: float = 15.0
    scale: float = 0.1
    shift: float = 0.05


def _uniform(n: int, bound: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) * 2 - 1) * bound


def random_affine(n: int, options: AugmentOptions, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2, 3) affine matrices in affine_grid's normalised coordinates: flip, then rotate/scale, then shift."""
    angle = _uniform(n, math.radians(options.rotate), g, device)
    scale = 1 + _uniform(n, options.scale, g, device)
    fx = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0) if options.hflip else torch.ones(n, device=device)
    fy = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0) if options.vflip else torch.ones(n, device=device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * fx, -sin * fy
    theta[:, 1, 0], theta[:, 1, 1] = sin * fx, cos * fy
    theta[:, 0, 2] = _uniform(n, 2 * options.shift, g, device)
    theta[:, 1, 2] = _uniform(n, 2 * options.shift, g, device)
    return theta


def augment(x: torch.Tensor, g: torch.Generator, options: AugmentOptions = AugmentOptions()) -> torch.Tensor:
    """Warp every image of the batch (N, C, H, W) by its own random transform.

    Borders are filled by replicating the edge (CT backgrounds are air, so the edge is background),
    which keeps the normalised intensities free of an artificial constant.
    """
    theta = random_affine(x.shape[0], options, g, x.device).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

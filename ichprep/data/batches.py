"""A loader's uint8 batch as the network's input on its device: normalised, resized, transformed, laid out.

Shared by the training step, validation, `predict`, `embed` and `lr-find`, so all of them feed the
network exactly the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A uint8 batch to the model's float input, (x / 255 - mean) / std per channel, in two in-place passes."""
    scale, shift = _affine(tuple(mean), tuple(std), x.device)
    return x.float().mul_(scale).sub_(shift)


@lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel scale and shift of ``normalise``, made once per device: building them for every
    batch would copy them to the GPU every step, a copy the step has to wait for."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=device).view(1, -1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=device).view(1, -1, 1, 1)
    return scale, shift


def resize_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Progressive resizing on the fly: area averaging to shrink, bilinear to grow."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def model_input(
    x: torch.Tensor,
    device: torch.device,
    size: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """A uint8 batch from a loader as the network's input on ``device``: normalised, resized, then ``transform``ed.

    ``transform`` is the training augmentation or TTA's views. On CUDA the result is laid out
    channels_last, the layout the model's weights have there and the one tensor cores read
    without a transpose.
    """
    x = resize_batch(normalise(x.to(device, non_blocking=True), mean, std), size)
    if transform is not None:
        x = transform(x)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x

"""The competition's weighted log loss as a training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The metric as a loss: per-label BCE weighted (2, 1, 1, 1, 1, 1), over sum(w), averaged over images."""
    losses = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")
    return (losses * weights).sum(dim=1).div(weights.sum()).mean()

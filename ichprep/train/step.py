"""One optimisation step, shared by the training loop, lr-find and the benchmarks, so all of them train alike.

The forward runs under autocast in the device's precision (``models.device.amp_dtype``). In fp16 the
loss is scaled before the backward pass, or gradients smaller than fp16's 6e-8 would vanish;
gradients are unscaled before clipping so the clip sees their true norm. The loss comes back
still on the device: reading it (``.item()``) makes the host wait for the GPU, so the caller
decides how rarely to do that.

With ``accumulate`` N, the gradients of N batches add up (each loss divided by N) before one
optimizer step: a recipe's batch of 32 at 480 px on a 16 GB GPU that holds 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ichprep.metrics import LABEL_WEIGHTS
from ichprep.models.device import amp_dtype
from ichprep.train.loss import weighted_bce


@dataclass
class Step:
    """A model, its optimizer and loss scaler, the label weights and the precision: call it with a batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    weights: torch.Tensor
    dtype: torch.dtype | None
    clip: float
    accumulate: int = 1
    pending: int = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, last: bool = False) -> tuple[torch.Tensor, bool]:
        """Forward, weighted BCE, (scaled) backward; every ``accumulate`` batches (or at the ``last`` of an epoch)
        clip and the optimizer step. The loss, detached, on the device, and whether the optimizer stepped."""
        if self.pending == 0:
            self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            logits = self.model(x)
        loss = weighted_bce(logits, y, self.weights)
        self.scaler.scale(loss / self.accumulate).backward()
        self.pending += 1
        if self.pending < self.accumulate and not last:
            return loss.detach(), False
        self.pending = 0
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), True


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, clip: float, accumulate: int = 1) -> Step:
    """The Step of ``model`` on ``device``, with a GradScaler that is enabled exactly when the precision is fp16."""
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return Step(model, optimizer, scaler, torch.tensor(LABEL_WEIGHTS, device=device), dtype, clip, accumulate)

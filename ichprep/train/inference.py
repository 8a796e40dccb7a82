"""A model applied to batches: mixed precision, on-device resizing, optional flip TTA.

Shared by validation in the training loop, `predict`, `evaluate` and `lr-find`, so all of them
feed the network exactly the same input.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ichprep import LABELS
from ichprep.train.dataset import MEAN, STD, ICHDataset, normalise


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on a GPU that has it, fp16 (with a GradScaler) on older GPUs, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resize_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Progressive resizing on the fly: area averaging to shrink, bilinear to grow."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    size: int | None,
    tta: bool = False,
    quiet: bool = True,
    mean: float = MEAN,
    std: float = STD,
) -> np.ndarray:
    """Sigmoid probabilities for every item of `loader`, in order; `tta` averages with horizontal flips."""
    from tqdm import tqdm

    model.eval()
    dtype = amp_dtype(device)
    out = []
    for x, _ in tqdm(loader, desc="predict", disable=quiet, leave=False):
        x = resize_batch(normalise(x.to(device, non_blocking=True), mean, std), size)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            p = torch.sigmoid(model(x).float())
            if tta:
                p = (p + torch.sigmoid(model(torch.flip(x, dims=[3])).float())) / 2
        out.append(p.cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)))


def image_size(ds: ICHDataset) -> int:
    """The side length of the stored images (read from the first item)."""
    return int(ds.source.read(int(ds.rows[0, 0])).shape[0])

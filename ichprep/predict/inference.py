"""A model applied to a loader: probabilities in the device's precision, optionally averaged over TTA views.

Shared by validation in the training loop, `predict` and `evaluate`, so a model is scored on
exactly the input it is later applied to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ichprep import LABELS
from ichprep.data.batches import model_input
from ichprep.models.device import amp_dtype
from ichprep.predict.tta import with_views


@torch.inference_mode()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    size: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    tta: Sequence[str] = (),
    quiet: bool = True,
) -> np.ndarray:
    """Sigmoid probabilities for every item of `loader`, in order; `tta` averages them over the named views (``TTA``).

    The views go through the network in the same forward as the originals (one batch of
    1 + len(tta) times the size), and the probabilities stay on the device until the end: no
    batch waits for the host to read the previous one.
    """
    from tqdm import tqdm

    model.eval()
    dtype = amp_dtype(device)
    views = 1 + len(tta)
    out = []
    for x, _ in tqdm(loader, desc="predict", disable=quiet, leave=False):
        n = len(x)
        x = model_input(x, device, size, mean, std, with_views(tta) if tta else None)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            p = torch.sigmoid(model(x).float())
        out.append(p.view(views, n, -1).mean(dim=0))
    if not out:
        return np.zeros((0, len(LABELS)))
    return torch.cat(out).cpu().numpy().astype(np.float64)

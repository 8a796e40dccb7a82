"""A model applied to batches: the precision of a device, on-device resizing, optional flip TTA.

Shared by validation in the training loop, `predict`, `evaluate` and `lr-find`, so all of them
feed the network exactly the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ichprep import LABELS
from ichprep.models.inputs import TTA_VIEWS
from ichprep.train.dataset import ICHDataset, normalise

TENSOR_CORES: tuple[int, int] = (7, 0)
"""The first compute capability with fp16 tensor cores (Volta: V100; Turing, 7.5: T4)."""

BF16_CORES: tuple[int, int] = (8, 0)
"""The first compute capability with bf16 tensor cores (Ampere: A100; then Hopper, H100)."""


def precision(capability: tuple[int, int], bf16_native: bool) -> torch.dtype | None:
    """The autocast dtype of a CUDA device of compute ``capability``; None means fp32.

    bf16 where the tensor cores do it natively: its range is fp32's, so no loss scaling is
    needed. ``torch.cuda.is_bf16_supported()`` counts emulation by default and says yes on a T4 or
    V100 (the Colab and Kaggle GPUs), where bf16 runs on the plain CUDA cores several times slower
    than fp16 on the tensor cores, so ``bf16_native`` must come from ``including_emulation=False``;
    those GPUs get fp16 with a GradScaler. Before Volta there are no tensor cores, and fp16
    arithmetic is fast on some of those GPUs (P100) and crippled on others (GTX 10xx): fp32.
    """
    if bf16_native and capability >= BF16_CORES:
        return torch.bfloat16
    if capability >= TENSOR_CORES:
        return torch.float16
    return None


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """``precision`` of ``device`` (None, fp32, on a CPU: autocast there would be slower, not faster)."""
    if device.type != "cuda":
        return None
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return precision(torch.cuda.get_device_capability(device), native)


def precision_name(dtype: torch.dtype | None) -> str:
    """How a run's first line names its precision."""
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast with loss scaling"}.get(dtype, "fp32")


def resize_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Progressive resizing on the fly: area averaging to shrink, bilinear to grow."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel's and torch.compile's wrappers.

    Its state_dict keys carry neither ``module.`` nor ``_orig_mod.``, so a checkpoint or model.pt
    loads the same whether the run that wrote it (or reads it) ran under torchrun or compiled.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def model_input(
    x: torch.Tensor,
    device: torch.device,
    size: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """A uint8 batch from a loader as the network's input on ``device``: normalised, resized, then ``transform``ed.

    ``transform`` is the training augmentation or TTA's flip. On CUDA the result is laid out
    channels_last, the layout the model's weights have there and the one tensor cores read
    without a transpose.
    """
    x = resize_batch(normalise(x.to(device, non_blocking=True), mean, std), size)
    if transform is not None:
        x = transform(x)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


TTA: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(zip(TTA_VIEWS, (
    lambda x: torch.flip(x, dims=[3]),
    lambda x: torch.flip(x, dims=[2]),
    lambda x: x.transpose(2, 3),
)))
"""Each of ``models.inputs.TTA_VIEWS`` on a batch (N, C, H, W). The images are square, so every view keeps the shape."""


def with_views(tta: Sequence[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A transform putting the batch and each of its ``tta`` views one after the other: all views in one forward pass."""
    return lambda x: torch.cat([x, *(TTA[name](x) for name in tta)])


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


def image_size(ds: ICHDataset) -> int:
    """The side length of the stored images (read from the first item)."""
    return int(ds.source.read(int(ds.rows[0, 0])).shape[0])

"""A trained CNN applied to images: the checks, the loader over its inputs, and batched inference with TTA.

Shared by validation in the training loop, `predict`, `evaluate`, `embed` and `train-series`, so a
model is scored on exactly the input it is later applied to. Inference runs under
``torch.inference_mode`` in the device's precision; the views of TTA go through the network in
the same forward as the originals. On a GPU that cannot hold a batch (a large network at a large
size on a 16 GB card), the batch is split in halves until it fits, and that is said once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ichprep import LABELS, layout
from ichprep.data.batches import model_input
from ichprep.data.dataset import make_dataset
from ichprep.errors import IchprepError
from ichprep.models.device import amp_dtype
from ichprep.models.saved import CnnModel
from ichprep.models.tta import with_views
from ichprep.settings import Settings
from ichprep.store import Converted

CPU_BATCH: int = 64
CUDA_BATCH: int = 256
"""Default images per batch of inference (with TTA, each view adds as many to one forward pass). Inference
holds the activations of a layer or two at a time, where training holds every layer's for the
backward pass, so a GPU that trains batches of 64 predicts larger ones; one that cannot is halved."""


def default_batch(device: torch.device) -> int:
    """Images per inference batch on ``device`` when none is asked for."""
    return CUDA_BATCH if device.type == "cuda" else CPU_BATCH


def check_data(record: CnnModel, data: Converted, model: Path | None = None) -> None:
    """Refuse DATA whose images were made differently from the model's training images.

    A model applied to other windows, another size or crop, or another encoding would still
    print probabilities, and a wrong submission that exits 0 is the worst outcome there is.
    """
    trained = Settings.from_dict(record.settings)
    made = data.settings
    if made is None:
        raise IchprepError(f"DATA {data.folder} has no {layout.SETTINGS}, so how its images were made is unknown; "
                           "give predict the DICOMs (they are converted with the model's settings)")
    changed = trained.pixel_differences(made)
    if changed:
        raise IchprepError(f"DATA {data.folder} was converted with other settings than the model's training data "
                           f"({'; '.join(changed)}); give predict the DICOMs, or convert them with the model's settings")
    side = 1 if record.stack == "2.5d" else record.neighbours
    if side and data.series is None:
        raise IchprepError(f"the model {model or ''} stacks {side} neighbouring slice(s) on each side, but DATA {data.folder} "
                           f"has no {layout.MANIFEST} with series positions")


def check_views(record: CnnModel, tta: Sequence[str], model: Path | None = None) -> None:
    """Refuse TTA views the model's training never drew: such a view is out of its distribution, and
    averaging it in makes the prediction worse, not better."""
    unseen = [view for view in tta if view not in record.views]
    if unseen:
        drew = ", ".join(record.views) if record.views else "no flips"
        raise IchprepError(f"--tta {','.join(unseen)}: the model {model or ''} never saw that view in training (its augmentation "
                           f"drew {drew}); average only views it was trained on, or train with --flips including it")


def model_loader(record: CnnModel, data: Converted, ids: list[str], batch: int, workers: int, prefetch: int | None,
                 device: torch.device) -> DataLoader:
    """The images ``ids`` of DATA, in that order, as the model reads them (its stack and neighbours: only a
    model that stacks slices reads the manifest's series)."""
    ds = make_dataset(data.images, ids, None, data.series if record.stacks_slices else None, record.neighbours, record.stack)
    return DataLoader(ds, batch_size=batch, num_workers=workers, prefetch_factor=prefetch, pin_memory=device.type == "cuda")


def _say(message: str) -> None:
    print(f"ichprep: note: {message}", file=sys.stderr)


@dataclass
class Halving:
    """Runs a function over a batch in chunks no larger than the device has held; halves them on CUDA out-of-memory."""

    limit: int | None = None
    say: Callable[[str], None] = field(default=_say)

    def __call__(self, fn: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        while True:
            limit = self.limit or len(x)
            try:
                parts = [fn(x[k : k + limit]) for k in range(0, len(x), limit)]
                return tuple(torch.cat(column) for column in zip(*parts))
            except torch.cuda.OutOfMemoryError:
                if limit == 1:
                    raise
                self.limit = limit // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.say(f"out of GPU memory at {limit} images a batch: going on with {self.limit} (--batch-size sets it)")


@dataclass(frozen=True)
class Inputs:
    """How a network reads a batch: the size it is resized to (None: as stored) and the per-channel mean and std."""

    size: int | None
    mean: Sequence[float]
    std: Sequence[float]

    @classmethod
    def of(cls, record: CnnModel) -> Inputs:
        return cls(record.size, record.mean, record.std)


def _probabilities(model: nn.Module, inputs: Inputs, device: torch.device, tta: Sequence[str]):
    """The probabilities (n, 6) of a uint8 batch of n images, averaged over ``tta``'s views, on the device."""
    dtype = amp_dtype(device)

    def run(x: torch.Tensor) -> tuple[torch.Tensor]:
        n = len(x)
        x = model_input(x, device, inputs.size, inputs.mean, inputs.std, with_views(tta) if tta else None)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            p = torch.sigmoid(model(x).float())
        return (p.view(1 + len(tta), n, -1).mean(dim=0),)

    return run


@torch.inference_mode()
def predict_loader(model: nn.Module, loader: DataLoader, device: torch.device, inputs: Inputs, tta: Sequence[str] = (),
                   quiet: bool = True, halving: Halving | None = None) -> np.ndarray:
    """Sigmoid probabilities for every item of ``loader``, in order, in the network's output order.

    The probabilities stay on the device until the end: no batch waits for the host to read the previous one.
    """
    from tqdm import tqdm

    model.eval()
    run, halving = _probabilities(model, inputs, device, tta), halving or Halving()
    out = [halving(run, x)[0] for x, _ in tqdm(loader, desc="predict", disable=quiet, leave=False)]
    if not out:
        return np.zeros((0, len(LABELS)))
    return torch.cat(out).cpu().numpy().astype(np.float64)


def embedder(model: nn.Module, record: CnnModel, device: torch.device, tta: Sequence[str]):
    """A function of a uint8 batch: its pooled features (n, F) and logits (n, 6, LABELS order), averaged over ``tta``'s views.

    The pooled features are the input of the CNN's last linear layer (timm's ``forward_head(...,
    pre_logits=True)``), the logits its output, both from one forward pass of the body.
    """
    dtype, inputs, order = amp_dtype(device), Inputs.of(record), record.order

    @torch.inference_mode()
    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, views = len(x), 1 + len(tta)
        x = model_input(x, device, inputs.size, inputs.mean, inputs.std, with_views(tta) if tta else None)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            body = model.forward_features(x)
            features = model.forward_head(body, pre_logits=True).float()
            logits = model.forward_head(body).float()
        return features.reshape(views, n, -1).mean(dim=0), logits.reshape(views, n, -1).mean(dim=0)[:, order]

    return run


@dataclass
class Embedded:
    """Per image, in ``ids`` order: features (N, F) float32 and logits (N, 6) in LABELS order."""

    ids: list[str]
    features: np.ndarray
    logits: np.ndarray


def embed_ids(record: CnnModel, data: Converted, ids: list[str], device: torch.device, tta: Sequence[str] = (),
              batch: int = CPU_BATCH, workers: int = 0, prefetch: int | None = None, quiet: bool = True) -> Embedded:
    """Every image of ``ids`` through the CNN of ``record``: all features in memory (float32), for training a second stage."""
    from tqdm import tqdm

    run, halving = embedder(record.network(device), record, device, tta), Halving()
    feats, logits = [], []
    for x, _ in tqdm(model_loader(record, data, ids, batch, workers, prefetch, device), desc="embed", disable=quiet, leave=False):
        f, lg = halving(run, x)
        feats.append(f.cpu().numpy())
        logits.append(lg.cpu().numpy())
    width = feats[0].shape[1] if feats else 0
    return Embedded(list(ids), np.concatenate(feats) if feats else np.zeros((0, width), np.float32),
                    np.concatenate(logits) if logits else np.zeros((0, len(LABELS)), np.float32))


def predict_ids(record: CnnModel, data: Converted, ids: list[str], device: torch.device, tta: Sequence[str] = (),
                batch: int | None = None, workers: int = 0, prefetch: int | None = None, quiet: bool = True) -> np.ndarray:
    """Probabilities (len(ids), 6) in LABELS order of the CNN of ``record`` on DATA's images ``ids``, as the model
    learned them (``metrics.prior_correct`` moves them to the true rates)."""
    loader = model_loader(record, data, ids, batch or default_batch(device), workers, prefetch, device)
    return predict_loader(record.network(device), loader, device, Inputs.of(record), tta, quiet)[:, record.order]

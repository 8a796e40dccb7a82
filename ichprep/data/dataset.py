"""A PyTorch Dataset over `ichprep convert`'s output: an image folder or HDF5 shards.

Images come back as uint8 tensors C x H x W (``batches.normalise`` makes the model's float input
on the batch's device), labels as six floats in LABELS order (NaN when an image has no label, e.g. the
test set). Images are read through an ``ichprep.store`` store, which opens HDF5 files lazily per process,
so a Dataset works with DataLoader workers under both fork and spawn.

Neighbouring slices, two ways (``models.inputs.STACKS``). ``windows`` with `neighbours=k`: every item stacks the
full image (all its windows, 3 by default) of the k previous slices, the slice itself and the k
next slices of its series (sorted by ImagePositionPatient z), in that order, giving 3 * (2k + 1)
channels for 3 windows. ``2.5d``, as the 2019 winner fed its CNNs: the first window (brain) of
the previous slice, the slice and the next slice, three channels, so an ImageNet RGB stem takes
them unchanged. At a series end the edge slice is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ichprep import LABELS
from ichprep.store import Store

MEAN: float = 0.6
STD: float = 0.25
"""The data's normalisation, Jeremy's hint for these windowed images (a network from random weights uses it)."""


def neighbour_rows(ids: list[str], series: pd.DataFrame | None, k: int) -> np.ndarray:
    """(len(ids), 2k+1) positions into `ids`: k previous slices, the slice, k next, within its series.

    Slices are sorted by z inside each series; an edge slice repeats itself, and a slice without
    series information stands alone (all 2k+1 entries are itself).
    """
    n = len(ids)
    rows = np.repeat(np.arange(n)[:, None], 2 * k + 1, axis=1)
    if k == 0 or series is None:
        return rows
    pos = pd.Series(np.arange(n), index=pd.Index(ids))
    known = series[series.index.isin(pos.index)].dropna()
    known = known.assign(pos=pos[known.index].to_numpy()).sort_values(["SeriesInstanceUID", "ImagePositionPatient2"])
    for _, group in known.groupby("SeriesInstanceUID", sort=False):
        members = group["pos"].to_numpy()
        m = len(members)
        for offset in range(-k, k + 1):
            neighbour = members[np.clip(np.arange(m) + offset, 0, m - 1)]
            rows[members, offset + k] = neighbour
    return rows


@dataclass
class ICHDataset(Dataset):
    """Items of `source` (positions `rows`, one row of 2k+1 slices each) with optional labels.

    `labels` is (len(rows), 6) in LABELS order or None. Images keep their stored size: a network
    that wants another gets the batch resized on its device (``batches.resize_batch``), in
    training and prediction alike.
    """

    source: Store
    rows: np.ndarray
    labels: np.ndarray | None = None
    ids: list[str] = field(default_factory=list)
    stack: str = "windows"

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64).reshape(len(self.rows), -1)
        if not self.ids:
            self.ids = [self.source.ids[r] for r in self.rows[:, self.rows.shape[1] // 2]]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def channels(self) -> int:
        """Input channels of the model: the stored channels (1-4 windows) times the stacked slices."""
        return self._image(int(self.rows[0, 0])).shape[2] * self.rows.shape[1]

    def _image(self, index: int) -> np.ndarray:
        img = self.source.read(int(index))
        img = img[..., None] if img.ndim == 2 else img
        return img[..., :1] if self.stack == "2.5d" else img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 C x H x W image, 6 float labels): uint8 crosses the worker queues at a quarter of float's
        size; ``normalise`` turns the batch into model input on its device. The image is a channels-first
        view of the stored array: the batch collation makes the one copy."""
        images = [self._image(r) for r in self.rows[i]]
        stack = images[0] if len(images) == 1 else np.concatenate(images, axis=2)
        x = torch.from_numpy(np.ascontiguousarray(stack)).permute(2, 0, 1)
        if self.labels is None:
            y = torch.full((len(LABELS),), float("nan"))
        else:
            y = torch.tensor(self.labels[i], dtype=torch.float32)
        return x, y


def make_dataset(
    source: Store,
    ids: list[str],
    labels: pd.DataFrame | None,
    series: pd.DataFrame | None = None,
    neighbours: int = 0,
    stack: str = "windows",
) -> ICHDataset:
    """An ICHDataset over the images `ids` of `source`, labelled from `labels` (indexed by id) when given.

    ``stack="2.5d"`` takes one slice on each side whatever ``neighbours`` says (``models.inputs.STACKS``).
    """
    position = pd.Series(np.arange(len(source)), index=pd.Index(source.ids))
    missing = [i for i in ids if i not in position.index]
    if missing:
        raise KeyError(f"{len(missing)} ids not in the images, e.g. {missing[0]}")
    rows = neighbour_rows(source.ids, series, 1 if stack == "2.5d" else neighbours)[position[ids].to_numpy()]
    y = None
    if labels is not None:
        y = labels.reindex(ids)[list(LABELS)].to_numpy(dtype=np.float32)
    return ICHDataset(source, rows, y, list(ids), stack)


def image_size(ds: ICHDataset) -> int:
    """The side length of the stored images (read from the first item)."""
    return int(ds.source.read(int(ds.rows[0, 0])).shape[0])

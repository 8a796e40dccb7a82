"""DataLoaders of a run: a seeded shuffle that resumes exactly, and each rank's validation share."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, Subset

from ichprep.data.dataset import ICHDataset, make_dataset
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.errors import IchprepError
from ichprep.train.config import TrainConfig
from ichprep.train.distributed import Dist
from ichprep.train.trainset import TrainSet


class EpochSampler(Sampler[int]):
    """A shuffling sampler whose order is a pure function of (seed, epoch), and this process's share of it.

    ``rows(epoch)`` picks the positions an epoch trains on (``TrainSet.epoch_rows``: a rebalanced
    draw), all of them when None. Under torchrun every process takes every ``world``-th position
    of the same order, padded with its first ones to a multiple of ``world`` as DistributedSampler pads.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1,
                 rows: Callable[[int], np.ndarray | None] | None = None) -> None:
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0
        self.rows = rows or (lambda _epoch: None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chosen(self) -> np.ndarray:
        chosen = self.rows(self.epoch)
        return np.arange(self.n) if chosen is None else chosen

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        chosen = self._chosen()
        order = chosen[torch.randperm(len(chosen), generator=g).numpy()]
        total = len(self) * self.world
        order = np.concatenate([order, order[: total - len(order)]])
        return iter(order[self.rank : total : self.world].tolist())

    def __len__(self) -> int:
        return -(-len(self._chosen()) // self.world)


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from the seed torch gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loaders(
    cfg: TrainConfig, d: Dist, train_ds: ICHDataset, val_ds: ICHDataset | None,
    rows: Callable[[int], np.ndarray | None] | None = None,
) -> tuple[DataLoader, DataLoader | None, np.ndarray]:
    """Training loader (seeded shuffle of each epoch's ``rows``, whole batches) and this rank's unpadded validation slice."""
    workers, prefetch = loader_workers(cfg.workers, d.device, d.local_world, usable_cores())
    common = dict(
        num_workers=workers,
        prefetch_factor=prefetch,
        pin_memory=d.device.type == "cuda",
        worker_init_fn=seed_worker,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    sampler = EpochSampler(len(train_ds), cfg.seed, d.rank, d.world, rows)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **common)
    if len(loader) == 0:
        raise IchprepError(f"{len(train_ds)} training images per process is less than one batch of {cfg.batch_size}")
    if val_ds is None or not len(val_ds):
        return loader, None, np.zeros(0, dtype=np.int64)
    positions = np.arange(len(val_ds))[d.rank :: d.world]
    val_loader = DataLoader(Subset(val_ds, positions.tolist()), batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return loader, val_loader, positions


def datasets(cfg: TrainConfig, ts: TrainSet) -> tuple[ICHDataset, ICHDataset | None]:
    """Train and validation Datasets of a TrainSet with the run's neighbours and normalisation."""

    def make(ids: list[str]) -> ICHDataset:
        return make_dataset(ts.data.images, ids, ts.labels, ts.series, cfg.neighbours, cfg.stack)

    return make(ts.train_ids), (make(ts.val_ids) if ts.val_ids else None)

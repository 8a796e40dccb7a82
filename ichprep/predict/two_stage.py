"""A two-stage model.pt applied to images: one pass over DATA in series order per part, a series at a time.

The images are read in (series, slice) order; each batch goes through every fold CNN of the part
(all held on the device), and as soon as the rows read so far hold complete series, those series
go through the sequence model (every network of its bag, both orders with reverse TTA) with each
CNN's embeddings, and the probabilities are averaged over the CNNs, as the fold ensemble averages
them, and over the parts. Only the current batch and the series not yet complete are held, so
memory is bounded by the batch and the longest series, not the data set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ichprep import LABELS
from ichprep.models.apply import Halving, embedder, model_loader
from ichprep.models.saved import SeriesPart, TwoStage
from ichprep.models.series_net import series_probs
from ichprep.series.order import positions, series_order
from ichprep.store import Converted


def predict_series(record: TwoStage, data: Converted, ids: Sequence[str], device: torch.device, tta: Sequence[str] = (),
                   batch: int = 64, workers: int = 0, prefetch: int | None = None, quiet: bool = True) -> np.ndarray:
    """Probabilities (len(ids), 6) in LABELS order from the two-stage ``record``; each series is made of its slices among ``ids``.

    ``tta`` is predict's --tta when given, else the views the sequence model was trained with.
    """
    tta = tuple(tta) or tuple(record.tta)
    order, _ = series_order(data, list(ids))
    ordered = list(order.index)
    probs = np.zeros((len(ordered), len(LABELS)))
    for part in record.parts:
        probs += _part(part, record.reverse, data, order, device, tta, batch, workers, prefetch, quiet)
    probs /= len(record.parts)
    back = np.empty(len(ordered), dtype=np.int64)
    position = {image: i for i, image in enumerate(ids)}
    back[[position[i] for i in ordered]] = np.arange(len(ordered))
    return probs[back] if len(ordered) else probs


def _part(part: SeriesPart, reverse: bool, data: Converted, order, device: torch.device, tta: Sequence[str], batch: int,
          workers: int, prefetch: int | None, quiet: bool) -> np.ndarray:
    """One part's probabilities of the rows of ``order`` (series, slice order)."""
    from tqdm import tqdm

    names = order["series"].to_numpy()
    first = np.r_[0, np.flatnonzero(names[1:] != names[:-1]) + 1] if len(names) else np.zeros(0, int)
    start_of = np.repeat(first, np.diff(np.r_[first, len(names)]))
    where = torch.from_numpy(positions(order)).float()[:, None]
    runs = [embedder(cnn.network(device), cnn, device, tta) for cnn in part.cnns]
    seqs, use_features, halving = part.series.networks(device), part.series.series_shape.features > 0, Halving()
    probs = np.zeros((len(names), len(LABELS)))
    pending: list[list[torch.Tensor]] = [[] for _ in runs]
    done = read = 0
    for x, _ in tqdm(model_loader(part.cnns[0], data, list(order.index), batch, workers, prefetch, device), desc="predict",
                     disable=quiet, leave=False):
        for k, run in enumerate(runs):
            f, lg = halving(run, x)
            pending[k].append(torch.cat([f if use_features else f[:, :0], where[read : read + len(x)].to(f.device), lg], dim=1).cpu())
        read += len(x)
        cut = read if read == len(names) else int(start_of[read])
        if cut > done:
            probs[done:cut] = _flush(seqs, reverse, pending, done, cut, first, device)
            done = cut
    return probs


def _flush(seqs: list[torch.nn.Module], reverse: bool, pending: list[list[torch.Tensor]], done: int, cut: int,
           first: np.ndarray, device: torch.device) -> np.ndarray:
    """Probabilities of rows [done, cut) (whole series), averaged over the CNNs and the bag; drops those rows from ``pending``."""
    bounds = [int(b) for b in first if done <= b < cut] + [cut]
    total = np.zeros((cut - done, len(LABELS)))
    for k, parts in enumerate(pending):
        rows = torch.cat(parts)
        head, rest = rows[: cut - done], rows[cut - done :]
        pending[k] = [rest] if len(rest) else []
        series = [head[a - done : b - done] for a, b in zip(bounds[:-1], bounds[1:])]
        for seq in seqs:
            total += np.concatenate(series_probs(seq, series, device, reverse=reverse))
    return total / (len(pending) * len(seqs))

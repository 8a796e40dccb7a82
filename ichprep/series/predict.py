"""A two-stage model.pt applied to images: one pass over DATA in series order, a series at a time.

The images are read in (series, slice) order; each batch goes through every fold CNN (all held on
the device), and as soon as the rows read so far hold complete series, those series go through
the sequence model with each CNN's embeddings and the probabilities are averaged over the CNNs,
as the fold ensemble averages them. Only the current batch and the series not yet complete are
held, so memory is bounded by the batch and the longest series, not the data set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ichprep import LABELS
from ichprep.models.saved import load_model
from ichprep.predict.predict import model_loader
from ichprep.series import embed
from ichprep.series.model import series_probs
from ichprep.series.network import load_series_model
from ichprep.series.order import series_order
from ichprep.store import Converted


def predict_series(record: dict, data: Converted, ids: Sequence[str], device: torch.device, tta: Sequence[str] = (),
                   batch: int = 64, workers: int = 0, prefetch: int | None = None, quiet: bool = True) -> np.ndarray:
    """Probabilities (len(ids), 6) in LABELS order from the two-stage ``record``; each series is made of its slices among ``ids``.

    ``tta`` is predict's --tta when given, else the views the sequence model was trained with.
    """
    from tqdm import tqdm

    tta = tuple(tta) or tuple(record["tta"])
    order, _ = series_order(data, list(ids))
    ordered = list(order.index)
    names = order["series"].to_numpy()
    first = np.r_[0, np.flatnonzero(names[1:] != names[:-1]) + 1] if len(names) else np.zeros(0, int)
    start_of = np.repeat(first, np.diff(np.r_[first, len(names)]))
    cnns = [(load_model(r, device), r) for r in record["cnns"]]
    seq = load_series_model(record, device)
    use_features = record["series"]["features"] > 0
    probs = np.zeros((len(ordered), len(LABELS)))
    pending: list[list[torch.Tensor]] = [[] for _ in cnns]
    done = read = 0
    source = model_loader(record["cnns"][0], data, ordered, batch, workers, prefetch, device)
    for x, _ in tqdm(source, desc="predict", disable=quiet, leave=False):
        for k, (model, r) in enumerate(cnns):
            f, lg = embed.embed_batch(model, r, x, device, tta)
            pending[k].append(torch.cat([f if use_features else f[:, :0], lg], dim=1).cpu())
        read += len(x)
        cut = read if read == len(ordered) else int(start_of[read])
        if cut > done:
            probs[done:cut] = _flush(seq, pending, done, cut, first, device)
            done = cut
    back = np.empty(len(ordered), dtype=np.int64)
    position = {image: i for i, image in enumerate(ids)}
    back[[position[i] for i in ordered]] = np.arange(len(ordered))
    return probs[back] if len(ordered) else probs


def _flush(seq: torch.nn.Module, pending: list[list[torch.Tensor]], done: int, cut: int, first: np.ndarray,
           device: torch.device) -> np.ndarray:
    """Probabilities of rows [done, cut) (whole series), averaged over the CNNs; drops those rows from ``pending``."""
    bounds = [int(b) for b in first if done <= b < cut] + [cut]
    total = np.zeros((cut - done, len(LABELS)))
    for k, parts in enumerate(pending):
        rows = torch.cat(parts)
        head, rest = rows[: cut - done], rows[cut - done :]
        pending[k] = [rest] if len(rest) else []
        series = [head[a - done : b - done] for a, b in zip(bounds[:-1], bounds[1:])]
        total += np.concatenate(series_probs(seq, series, device))
    return total / len(pending)

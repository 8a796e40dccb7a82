"""`ichprep embed`: every image of converted DATA through a model's CNNs, written as an embedding file.

For a second stage of one's own: the file ``series.embeddings`` describes, one row per image with
where it sits in its series, the six logits and the pooled features. A fold ensemble's members
put their features side by side and average their logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import layout
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.errors import IchprepError
from ichprep.models.apply import Embedded, check_data, check_views, default_batch, embed_ids
from ichprep.models.device import pick_device
from ichprep.models.saved import CnnModel, members
from ichprep.series import embeddings
from ichprep.series.order import series_order
from ichprep.store import open_converted


def embed_data(model_path: Path, data: Path, out: Path, tta: Sequence[str] = (), batch: int | None = None,
               workers: int | None = None, device: str = "auto", quiet: bool = True) -> pd.DataFrame:
    """Every image of converted DATA through MODEL's CNNs (an ensemble's side by side), written to ``out``."""
    if not layout.is_converted(data):
        raise IchprepError(f"DATA {data} is not convert's output; convert it first with the model's settings")
    singles = members(model_path)
    if any(not isinstance(r, CnnModel) for _, r in singles):
        raise IchprepError(f"MODEL {model_path} is a two-stage model; embed its run's fold models (RUN/model.pt)")
    converted = open_converted(data)
    for path, record in singles:
        check_views(record, tta, path)
        check_data(record, converted, path)
    dev = pick_device(device)
    ids = list(converted.images.ids)
    nw, prefetch = loader_workers(workers, dev, 1, usable_cores())
    parts = [embed_ids(r, converted, ids, dev, tta, batch or default_batch(dev), nw, prefetch, quiet) for _, r in singles]
    order, _ = series_order(converted, ids)
    every = Embedded(ids, np.concatenate([p.features for p in parts], axis=1), np.mean([p.logits for p in parts], axis=0))
    table = embeddings.frame(every, order)
    embeddings.write(table, out, {"model": str(model_path.name), "tta": ",".join(tta)})
    return table

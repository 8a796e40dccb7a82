"""Images to what a second stage reads: each CNN's pooled features and its six logits, TTA-averaged.

The pooled features are the input of the CNN's last linear layer (timm's ``forward_head(...,
pre_logits=True)``), the logits its output, both taken from one forward pass of the body. With
``tta`` the views go through the network in the same batch (``predict.tta.with_views``) and both
are averaged over them, as the 2nd place of 2019 averaged its embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ichprep import LABELS, atomic
from ichprep.data.batches import model_input
from ichprep.models.device import amp_dtype
from ichprep.models.saved import labels_order
from ichprep.predict.predict import model_loader
from ichprep.predict.tta import with_views
from ichprep.store import Converted, open_converted


@dataclass
class Embedded:
    """Per image, in ``ids`` order: features (N, F) float32 and logits (N, 6) in LABELS order."""

    ids: list[str]
    features: np.ndarray
    logits: np.ndarray


@torch.inference_mode()
def embed_batch(model: nn.Module, record: dict, x: torch.Tensor, device: torch.device,
                tta: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (n, F) and logits (n, 6, LABELS order) of a uint8 batch ``x``, averaged over ``tta``'s views, on ``device``."""
    n, views = len(x), 1 + len(tta)
    x = model_input(x, device, record["size"], record["mean"], record["std"], with_views(tta) if tta else None)
    dtype = amp_dtype(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        body = model.forward_features(x)
        features = model.forward_head(body, pre_logits=True).float()
        logits = model.forward_head(body).float()
    features = features.reshape(views, n, -1).mean(dim=0)
    logits = logits.reshape(views, n, -1).mean(dim=0)[:, labels_order(record)]
    return features, logits


def embed_ids(model: nn.Module, record: dict, data: Converted, ids: list[str], device: torch.device,
              tta: Sequence[str] = (), batch: int = 64, workers: int = 0, prefetch: int | None = None,
              quiet: bool = True) -> Embedded:
    """Every image of ``ids`` through ``model``: all features in memory (float32), for training a second stage."""
    from tqdm import tqdm

    feats, logits = [], []
    for x, _ in tqdm(model_loader(record, data, ids, batch, workers, prefetch, device), desc="embed", disable=quiet,
                     leave=False):
        f, lg = embed_batch(model, record, x, device, tta)
        feats.append(f.cpu().numpy())
        logits.append(lg.cpu().numpy())
    width = feats[0].shape[1] if feats else 0
    return Embedded(list(ids), np.concatenate(feats) if feats else np.zeros((0, width), np.float32),
                    np.concatenate(logits) if logits else np.zeros((0, len(LABELS)), np.float32))


def feature_columns(width: int) -> list[str]:
    """The features' column names in an embedding file: f0000, f0001, ..."""
    return [f"f{k:04d}" for k in range(width)]


LOGIT_COLUMNS = [f"logit_{label}" for label in LABELS]


def frame(ids: list[str], features: np.ndarray, logits: np.ndarray, order: pd.DataFrame) -> pd.DataFrame:
    """The embedding file's table: id, series, position, slice, the six logits (float32), the features (float16)."""
    where = order.reindex(ids)
    head = pd.DataFrame({"id": ids, "series": where["series"].to_numpy(), "position": where["position"].to_numpy(),
                         "slice": where["slice"].to_numpy()})
    lg = pd.DataFrame(logits.astype(np.float32), columns=LOGIT_COLUMNS)
    ft = pd.DataFrame(features.astype(np.float16), columns=feature_columns(features.shape[1]))
    return pd.concat([head, lg, ft], axis=1)


def from_frame(table: pd.DataFrame) -> Embedded:
    """An embedding file's table back as arrays (features float32)."""
    cols = [c for c in table.columns if c.startswith("f") and c[1:].isdigit()]
    return Embedded(table["id"].astype(str).tolist(), table[cols].to_numpy(np.float32), table[LOGIT_COLUMNS].to_numpy(np.float32))


def write(table: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> None:
    """The table as Parquet under a temporary name, renamed when complete; ``metadata`` in the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
    with atomic.replacing(path) as tmp:
        pq.write_table(arrow, tmp)



def embed_data(model_path: Path, data: Path, out: Path, tta: Sequence[str] = (), batch: int | None = None,
               workers: int | None = None, device: str = "auto", quiet: bool = True) -> pd.DataFrame:
    """`ichprep embed`: every image of converted DATA through MODEL (an ensemble's members side by side), written to ``out``."""
    from ichprep import layout
    from ichprep.data.workers import loader_workers, usable_cores
    from ichprep.errors import IchprepError
    from ichprep.models.device import pick_device
    from ichprep.models.saved import load_model, members
    from ichprep.predict.predict import check_data
    from ichprep.series.order import series_order

    if not layout.is_converted(data):
        raise IchprepError(f"DATA {data} is not convert's output; convert it first with the model's settings")
    singles = members(model_path)
    if any("cnns" in r for _, r in singles):
        raise IchprepError(f"MODEL {model_path} is a two-stage model; embed its run's fold models (RUN/model.pt)")
    dev = pick_device(device)
    converted = open_converted(data)
    for path, record in singles:
        check_data(record, converted, path)
    ids = list(converted.images.ids)
    nw, prefetch = loader_workers(workers, dev, 1, usable_cores())
    parts = [embed_ids(load_model(r, dev), r, converted, ids, dev, tta, batch or (256 if dev.type == "cuda" else 64), nw,
                       prefetch, quiet) for _, r in singles]
    order, _ = series_order(converted, ids)
    table = frame(ids, np.concatenate([p.features for p in parts], axis=1), np.mean([p.logits for p in parts], axis=0), order)
    write(table, out, {"model": str(model_path.name), "tta": ",".join(tta)})
    return table


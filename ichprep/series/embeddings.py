"""The embedding file: what a second stage reads of each image, and the one place its columns are spelled.

``SRUN/oof_embeddings.parquet`` (train-series) and ``ichprep embed``'s output share it: one row per
image with ``id, series, position, slice`` (where it sits in its series), optionally ``fold`` (the
fold model that embedded it), the six ``logit_<label>`` (float32) and the pooled features
``f0000...`` (float16, half the size on disk for no loss a second stage can measure). The file's
key-value metadata records what made it (``tta``, the fold models' identities), so a cache is
used only for the models it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS, atomic
from ichprep.models.apply import Embedded

LOGIT_COLUMNS: list[str] = [f"logit_{label}" for label in LABELS]
PLACE_COLUMNS: list[str] = ["id", "series", "position", "slice"]


def feature_columns(width: int) -> list[str]:
    """The features' column names: f0000, f0001, ..."""
    return [f"f{k:04d}" for k in range(width)]


def is_feature(column: str) -> bool:
    """Whether ``column`` is one of the features' (``feature_columns``)."""
    return column.startswith("f") and column[1:].isdigit()


def width(table: pd.DataFrame) -> int:
    """How many features the table holds per image."""
    return sum(is_feature(c) for c in table.columns)


def frame(emb: Embedded, order: pd.DataFrame, folds: np.ndarray | None = None) -> pd.DataFrame:
    """The file's table of ``emb``, placed by ``order`` (``order.series_order``), with each row's fold when given."""
    where = order.reindex(emb.ids)
    head = pd.DataFrame({"id": emb.ids, **{c: where[c].to_numpy() for c in PLACE_COLUMNS[1:]}})
    if folds is not None:
        head["fold"] = folds
    lg = pd.DataFrame(emb.logits.astype(np.float32), columns=LOGIT_COLUMNS)
    ft = pd.DataFrame(emb.features.astype(np.float16), columns=feature_columns(emb.features.shape[1]))
    return pd.concat([head, lg, ft], axis=1)


def arrays(table: pd.DataFrame) -> Embedded:
    """A table of the file back as arrays (features float32)."""
    cols = [c for c in table.columns if is_feature(c)]
    return Embedded(table["id"].astype(str).tolist(), table[cols].to_numpy(np.float32), table[LOGIT_COLUMNS].to_numpy(np.float32))


def write(table: pd.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    """The table as Parquet under a temporary name, renamed when complete; ``metadata`` in the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}})
    with atomic.replacing(path) as tmp:
        pq.write_table(arrow, tmp)


def metadata(path: Path) -> dict[str, str]:
    """The key-value metadata ``write`` stored, without reading the table."""
    import pyarrow.parquet as pq

    return {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items() if k != b"pandas"}

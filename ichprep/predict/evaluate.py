"""`ichprep evaluate`: a prediction scored against labels with the competition's metric and the per-label diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.labels import load_labels
from ichprep.metrics import summary
from ichprep.predict.predict import Predictions


def evaluate(pred: Predictions, labels: str | Path | pd.DataFrame) -> tuple[dict, int]:
    """Metric summary of the predicted images that have labels, and how many were left out for lack of one.

    ``labels`` is a labels file or a table already read with ``load_labels``.
    """
    table = labels if isinstance(labels, pd.DataFrame) else load_labels(labels)
    known = [k for k, i in enumerate(pred.ids) if i in table.index]
    if not known:
        raise IchprepError(f"none of the {len(pred.ids)} predicted images has a label")
    y = table.loc[[pred.ids[k] for k in known], list(LABELS)].to_numpy(dtype=np.float64)
    return summary(y, pred.probs[known]), len(pred.ids) - len(known)

"""The competition's submission table of a prediction.

A submission has six rows per image, `ID_<image>_<subtype>,<probability>` in the competition's
subtype order. Probabilities are clipped to [CLIP, 1 - CLIP] with CLIP = 1e-4: a confidently
wrong prediction then costs at most -ln(1e-4) = 9.2 instead of ~16-35, while a confidently right
one still costs only 1e-4, about 0.2 % of the winning scores (0.044).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ichprep import LABELS, SUBTYPES
from ichprep.predict.predict import Predictions

CLIP: float = 1e-4
"""Submission probabilities are kept in [CLIP, 1 - CLIP] (see the module docstring for why)."""


def submission(pred: Predictions, clip: float = CLIP) -> pd.DataFrame:
    """The competition CSV table: `ID` = ID_<image>_<subtype> (SUBTYPES order per image), `Label`."""
    probs = np.clip(pred.probs, clip, 1 - clip)
    order = [LABELS.index(s) for s in SUBTYPES]
    names = [i if i.startswith("ID_") else f"ID_{i}" for i in pred.ids]
    return pd.DataFrame({
        "ID": [f"{name}_{s}" for name in names for s in SUBTYPES],
        "Label": probs[:, order].reshape(-1),
    })

"""Patient-grouped K-fold assignment: every image of a patient in one fold, positives spread evenly.

A patient's slices are near-copies of each other; a fold that held some of them for training and
others for validation would score memory, not generalisation. Patients with a positive slice are
dealt first, each to the fold with the fewest of them so far (the fewest images breaking ties), then
the others, each to the fold with the fewest images: the folds' positive patients differ by one at
most, and their images by about one patient's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def patient_kfold(patients: pd.Series, k: int, seed: int, positive: pd.Series | None = None) -> pd.Series:
    """The fold (0..k-1) of each row of ``patients`` (PatientID by image id); ``positive`` marks positive images."""
    if k < 2:
        raise ValueError(f"K-fold needs k >= 2, got {k}")
    sizes = patients.value_counts(sort=False)
    has_positive = (positive.groupby(patients).any() if positive is not None else pd.Series(False, index=sizes.index))
    rng = np.random.default_rng(seed)
    load = np.zeros(k, dtype=np.int64)
    fold_of: dict[object, int] = {}
    for group in (True, False):
        members = np.array(sorted(p for p in sizes.index if bool(has_positive.get(p, False)) == group), dtype=object)
        dealt = np.zeros(k, dtype=np.int64)
        for patient in members[rng.permutation(len(members))]:
            fold = min(range(k), key=lambda f: (dealt[f], load[f]) if group else (load[f],))
            fold_of[patient] = fold
            dealt[fold] += 1
            load[fold] += sizes[patient]
    return patients.map(fold_of).astype(np.int64)

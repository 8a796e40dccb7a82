"""The second stage's data: every series of the out-of-fold embeddings in slice order, its labels, its split.

A series holds every labelled slice of it, as a test series holds every slice: the embeddings
cover the whole population a ``--folds`` run validated on, not the rebalanced sample its CNNs
trained on. Whole patients are held out for validation. The baselines a second stage must beat
are computed on the same validation series: the fold CNNs' probabilities as they learned them,
corrected to the true rates, and those smoothed along each series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ichprep import LABELS
from ichprep.metrics import prior_correct, weighted_log_loss
from ichprep.series import embeddings
from ichprep.series.order import positions
from ichprep.series.smooth import smoothed
from ichprep.splits import patient_folds


@dataclass
class Stage:
    """Per series (in slice order): its rows of ``table``, its inputs (``SeriesShape.width`` columns) and labels;
    ``valid`` marks the validation series."""

    table: pd.DataFrame
    groups: list[np.ndarray]
    inputs: list[torch.Tensor]
    targets: list[torch.Tensor]
    valid: np.ndarray

    def labels(self, series: np.ndarray) -> np.ndarray:
        """The labels (N, 6) of the slices of ``series`` (indices), in order."""
        return np.concatenate([self.targets[i].numpy() for i in series]).astype(np.float64)


def stage_data(table: pd.DataFrame, labels: pd.DataFrame, patients: pd.Series, features: bool, val_frac: float,
               seed: int) -> Stage:
    """Group the embeddings into series in slice order, attach labels, split whole patients off for validation."""
    table = table.sort_values(["series", "slice"], kind="stable").reset_index(drop=True)
    emb = embeddings.arrays(table)
    x = np.concatenate([emb.features if features else emb.features[:, :0], positions(table)[:, None], emb.logits], axis=1)
    y = labels.loc[emb.ids, list(LABELS)].to_numpy(dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, table["series"].to_numpy()[1:] != table["series"].to_numpy()[:-1]])
    groups = np.split(np.arange(len(table)), starts[1:])
    if val_frac > 0:
        folds = patient_folds(patients.reindex(emb.ids), val_frac, seed, labels[list(LABELS)].reindex(emb.ids))
    else:
        folds = pd.Series("train", index=emb.ids)
    valid = np.array([folds.iloc[g[0]] == "valid" for g in groups])
    return Stage(table, groups, [torch.from_numpy(x[g]).half() for g in groups], [torch.from_numpy(y[g]) for g in groups], valid)


def augmented(n: int, rng: np.random.Generator, seq_aug: Sequence[str], crop: int) -> np.ndarray:
    """The rows of a training series of ``n`` slices after the sequence augmentation (the 1st place's): every other
    slice (p 0.5, series of more than 10), a window of ``crop`` slices, read backwards (p 0.5)."""
    rows = np.arange(n)
    if "skip" in seq_aug and n > 10 and rng.random() < 0.5:
        rows = rows[int(rng.integers(2)) :: 2]
    if crop and len(rows) > crop:
        start = int(rng.integers(len(rows) - crop + 1))
        rows = rows[start : start + crop]
    if "reverse" in seq_aug and rng.random() < 0.5:
        rows = rows[::-1]
    return rows


def baselines(stage: Stage, series: np.ndarray, rates: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Weighted log loss on ``series`` of the CNNs' out-of-fold probabilities as learned, corrected to the true rates
    with each fold model's ``rates`` (learned, true), and those smoothed along each series."""
    probs = 1 / (1 + np.exp(-stage.table[embeddings.LOGIT_COLUMNS].to_numpy(np.float64)))
    corrected = probs.copy()
    for fold, (learned, true) in rates.items():
        rows = (stage.table["fold"] == fold).to_numpy()
        corrected[rows] = prior_correct(probs[rows], true, learned)
    groups = [stage.groups[i] for i in series]
    picked = np.concatenate(groups)
    y = stage.labels(series)
    return {"cnn_learned": weighted_log_loss(y, probs[picked]), "cnn": weighted_log_loss(y, corrected[picked]),
            "smoothed": weighted_log_loss(y, smoothed(corrected, groups)[picked])}

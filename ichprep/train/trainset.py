"""Which images a run trains and validates on: a rebalanced sample to train, the true distribution to validate.

A run's *population* is every labelled image of DATA: the label table's, or, for clean-meta's
rebalanced ``train.parquet``, the ``labels.parquet`` beside it, which keeps every image's labels.
What *trains* is the table's rows as given (clean-meta's sample: one negative per positive, as
Jeremy Howard's kernel prototyped), or with ``--neg-ratio R`` a fresh draw every epoch of R
negatives per positive from every labelled image of the training patients (``all``: every one).
What *validates* is every labelled image of the held-out patients: complete series at the true
positive rate, as the test set is, so the validation score, the out-of-fold table and the choice
of the best epoch say what the leaderboard will. The model learns the sample's rate and records
it with the true one, and its predictions are corrected from one to the other (``metrics.prior_correct``).

Kept apart from the loop so `train`, `lr-find`, the folds and the tests resolve data identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS, layout
from ichprep.errors import IchprepError
from ichprep.labels import ID_COLUMN, load_labels
from ichprep.splits import holdout, kfold, patients_of
from ichprep.store import Converted


@dataclass
class TrainSet:
    """Everything about the data a run needs, decided once and deterministically from the seed."""

    data: Converted
    labels: pd.DataFrame
    """Every labelled image of DATA (the population), indexed by id."""
    train_ids: list[str]
    """What trains: the table's rows, or with ``neg_ratio`` the pool each epoch's sample is drawn from."""
    val_ids: list[str]
    series: pd.DataFrame | None
    train_rate: np.ndarray
    true_rate: np.ndarray
    notes: list[str]
    patients: pd.Series
    """The patient of every labelled image (``splits.patients_of``): no patient is ever split."""
    neg_ratio: float | None = None

    def epoch_rows(self, epoch: int, seed: int) -> np.ndarray | None:
        """Positions into ``train_ids`` that train in ``epoch``: every positive and ``neg_ratio`` negatives per
        positive drawn for that epoch alone (a pure function of seed and epoch); None to train on all of them."""
        if self.neg_ratio is None:
            return None
        positive = self.labels.loc[self.train_ids, "any"].to_numpy() > 0
        pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
        keep = _kept(len(pos), len(neg), self.neg_ratio)
        rng = np.random.default_rng([seed & (2**63 - 1), epoch, 7])
        return np.sort(np.concatenate([pos, rng.choice(neg, keep, replace=False)]))


def _kept(positives: int, negatives: int, ratio: float) -> int:
    """Negatives an epoch keeps: ``ratio`` per positive, at most all of them (``ratio`` inf: all)."""
    return negatives if math.isinf(ratio) else min(negatives, int(round(ratio * positives)))


def resolve_labels(data: Converted, labels: Path | None) -> tuple[pd.DataFrame, Path | None]:
    """The label table (indexed by id) and the file it came from: ``labels`` when given, else DATA's default ones
    (``Converted.labels``: None for the shards' own labels)."""
    if labels is not None:
        return load_labels(labels), labels
    if data.labels is None:
        raise IchprepError(
            f"{data.folder}: no labels found; pass --labels stage_1_train.csv or clean-meta's train.parquet"
        )
    return data.labels


def beside(labels_file: Path | None, name: str) -> Path | None:
    """clean-meta's file ``name`` next to its ``train.parquet`` when the labels are that file and it is there."""
    if labels_file is None or labels_file.name != layout.TRAIN_TABLE:
        return None
    path = labels_file.parent / name
    return path if path.exists() else None


def population(table: pd.DataFrame, labels_file: Path | None) -> pd.DataFrame:
    """Every image's labels: clean-meta's labels.parquet beside its sample, else the table itself."""
    full = beside(labels_file, layout.LABELS_TABLE)
    if full is None:
        return table
    every = load_labels(full)
    return every.combine_first(table[list(LABELS)]) if len(table) else every


def series_table(data: Converted, labels: pd.DataFrame) -> pd.DataFrame | None:
    """id -> (SeriesInstanceUID, z) for ordering slices: DATA's manifest (every converted slice, including
    neighbours a rebalanced training table left out), else the label table's columns."""
    cols = ["SeriesInstanceUID", "ImagePositionPatient2"]
    if data.series is not None:
        return data.series
    if set(cols) <= set(labels.columns):
        return labels[cols]
    return None


def _meta(labels_file: Path | None) -> pd.DataFrame | None:
    """clean-meta's meta.parquet beside the table (every row's patient and fold), indexed by id; None without it."""
    path = beside(labels_file, layout.META_TABLE)
    if path is None:
        return None
    import pyarrow.parquet as pq

    columns = [c for c in (ID_COLUMN, "PatientID", "fold") if c in pq.read_schema(path).names]
    return pd.read_parquet(path, columns=columns).drop_duplicates(ID_COLUMN).set_index(ID_COLUMN) if ID_COLUMN in columns else None


def _column(table: pd.DataFrame | None, name: str) -> pd.Series | None:
    return table[name].dropna() if table is not None and name in table.columns else None


def _series_of(data: Converted) -> pd.Series | None:
    return data.series["SeriesInstanceUID"] if data.series is not None else None


@dataclass
class _Split:
    """What the split decides: the validation ids among the population, the training ids among the sample, how."""

    valid: set[str]
    how: str
    patients: pd.Series


def _split(data: Converted, table: pd.DataFrame, every: pd.DataFrame, ids: list[str], meta: pd.DataFrame | None,
           val_frac: float | None, seed: int, folds: int | None, fold: int | None) -> _Split:
    """The held-out ids of a fold of ``folds``, else of the table's fold column (unless --val-frac), else by patient."""
    given = [m for m in (_column(table, "fold"), _column(meta, "fold")) if m is not None]
    marks = pd.concat(given) if given else pd.Series(dtype=object)
    marks = marks[~marks.index.duplicated()]
    everyone = patients_of(list(dict.fromkeys([*ids, *marks.index])), _column(table, "PatientID"), _column(meta, "PatientID"),
                           data.patients, _series_of(data))
    patients = everyone.reindex(ids)
    if folds is not None and fold is not None:
        assignment, how = kfold(ids, patients, folds, seed, every["any"].reindex(ids) > 0, _column(table, "fold"))
        return _Split(set(assignment.index[assignment.to_numpy() == fold]), f"fold {fold} of {how}", patients)
    valid_patients = None
    if len(marks) and marks.isin(["train", "valid"]).all():
        valid_patients = set(everyone.reindex(marks.index)[marks.to_numpy() == "valid"])
    chosen, how = holdout(ids, patients, val_frac, seed, every[list(LABELS)], valid_patients)
    return _Split({i for i, v in zip(ids, chosen) if v}, how, patients)


def _rates(every: pd.DataFrame, train_ids: list[str], neg_ratio: float | None) -> np.ndarray:
    """The positive rate of each label the model learns: the training images', or an epoch sample's expectation."""
    y = every.loc[train_ids, list(LABELS)].to_numpy(dtype=np.float64)
    if neg_ratio is None or not len(y):
        return y.mean(axis=0)
    positive = y[:, 0] > 0
    kept = _kept(int(positive.sum()), int((~positive).sum()), neg_ratio)
    return y[positive].sum(axis=0) / max(1, int(positive.sum()) + kept)


def prepare(
    data: Converted,
    labels: str | Path | None = None,
    val_frac: float | None = None,
    seed: int = 42,
    max_images: int | None = None,
    folds: int | None = None,
    fold: int | None = None,
    neg_ratio: float | None = None,
) -> TrainSet:
    """DATA's labelled images (the optional seeded subset taken), split by patient into the sample that trains and
    the population that validates (see the module's docstring)."""
    source = data.images
    table, labels_file = resolve_labels(data, Path(labels) if labels else None)
    every = population(table, labels_file)
    present = set(source.ids)
    known = set(every.index[every[list(LABELS)].notna().all(axis=1)])
    ids = [i for i in source.ids if i in known]
    notes = []
    missing = len(set(table.index[table[list(LABELS)].notna().all(axis=1)]) - present)
    if missing:
        notes.append(f"{missing} labelled images are not in {data.folder} and are skipped")
    if not ids:
        raise IchprepError(f"{data.folder}: none of its {len(source.ids)} images has a label")
    if max_images is not None and max_images < len(ids):
        keep = np.sort(np.random.default_rng(seed).choice(len(ids), max_images, replace=False))
        ids = [ids[k] for k in keep]
    split = _split(data, table, every, ids, _meta(labels_file), val_frac, seed, folds, fold)
    sampled = set(table.index) if neg_ratio is None else set(ids)
    train_ids = [i for i in ids if i in sampled and i not in split.valid]
    val_ids = [i for i in ids if i in split.valid]
    if not train_ids:
        raise IchprepError(f"{data.folder}: no labelled image is left to train on after the split ({split.how})")
    pool = [i for i in ids if i not in split.valid]
    train_rate, true_rate = _rates(every, train_ids, neg_ratio), every.loc[pool, list(LABELS)].to_numpy(np.float64).mean(axis=0)
    notes.append(f"{len(train_ids)} train / {len(val_ids)} validation images, split by {split.how}")
    if neg_ratio is not None or len(train_ids) < len(pool):
        notes += _balance(train_ids, val_ids, train_rate, true_rate, neg_ratio)
    return TrainSet(data, every, train_ids, val_ids, series_table(data, table), train_rate, true_rate, notes, split.patients,
                    neg_ratio)


def _balance(train_ids: list[str], val_ids: list[str], train_rate: np.ndarray, true_rate: np.ndarray,
             neg_ratio: float | None) -> list[str]:
    """The lines that say a run trains on a rebalanced sample and validates on the true distribution."""
    drawn = ("every labelled image of the training patients" if neg_ratio is not None and math.isinf(neg_ratio)
             else f"{neg_ratio:g} negative(s) per positive drawn afresh each epoch" if neg_ratio is not None
             else "the table's rebalanced sample")
    return [f"training on {drawn}: any in {train_rate[0]:.1%} ({true_rate[0]:.1%} in every labelled image of those patients)",
            f"validating on all {len(val_ids)} labelled images of the held-out patients, corrected to the true rate"]

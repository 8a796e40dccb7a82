"""Which images a run trains and validates on: labels, the optional subset, and the patient split.

Kept apart from the loop so `train`, `lr-find` and the tests resolve data identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS, layout
from ichprep.errors import IchprepError
from ichprep.labels import load_labels
from ichprep.splits import patient_folds, patient_kfold
from ichprep.store import Converted


@dataclass
class TrainSet:
    """Everything about the data a run needs, decided once and deterministically from the seed."""

    data: Converted
    labels: pd.DataFrame
    train_ids: list[str]
    val_ids: list[str]
    series: pd.DataFrame | None
    train_rate: np.ndarray
    true_rate: np.ndarray
    notes: list[str]


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


def series_table(data: Converted, labels: pd.DataFrame) -> pd.DataFrame | None:
    """id -> (SeriesInstanceUID, z) for ordering slices: DATA's manifest (every converted slice, including
    neighbours a rebalanced training table left out), else the label table's columns."""
    cols = ["SeriesInstanceUID", "ImagePositionPatient2"]
    if data.series is not None:
        return data.series
    if set(cols) <= set(labels.columns):
        return labels[cols]
    return None


def true_rates(labels_file: Path | None, fallback: np.ndarray) -> np.ndarray:
    """Positive rate of each label before any rebalancing, for prior correction at predict time.

    clean-meta writes every image's labels to labels.parquet next to the (rebalanced) train.parquet;
    without that file the training rate is the best estimate there is.
    """
    if labels_file is not None and labels_file.name == layout.TRAIN_TABLE:
        full = labels_file.parent / layout.LABELS_TABLE
        if full.exists():
            return pd.read_parquet(full)[list(LABELS)].mean().to_numpy(dtype=np.float64)
    return fallback


def _patients(data: Converted, labels: pd.DataFrame, ids: list[str]) -> pd.Series:
    """PatientID of each id from the label table or DATA's manifest; the id itself when unknown."""
    if "PatientID" in labels:
        patients = labels["PatientID"].reindex(ids)
    elif data.patients is not None:
        patients = data.patients.reindex(ids)
    else:
        patients = pd.Series(np.nan, index=ids, dtype=object)
    return patients.fillna(pd.Series(ids, index=ids))


def kfold(data: Converted, labels: pd.DataFrame, ids: list[str], k: int, seed: int) -> tuple[pd.Series, str]:
    """The fold (0..k-1) of every id, and how it was decided: the table's own integer fold column, else by patient."""
    if "fold" in labels:
        given = pd.to_numeric(labels["fold"].reindex(ids), errors="coerce")
        if given.notna().all() and set(given.astype(int)) == set(range(k)):
            return given.astype(int), "the table's fold column"
    positive = labels["any"].reindex(ids).fillna(0) > 0
    return patient_kfold(_patients(data, labels, ids), k, seed, positive), f"{k} patient-grouped folds (seed {seed})"


def split(
    data: Converted, labels: pd.DataFrame, ids: list[str], val_frac: float | None, seed: int,
    folds: int | None = None, fold: int | None = None,
) -> tuple[list[str], list[str], str]:
    """(train ids, validation ids, how): fold ``fold`` of ``folds``; else the table's fold column unless
    --val-frac is given, else by patient.

    The patient split holds both classes of every label in validation wherever two patients have
    them (``patient_folds``), so each validation AUC is defined.
    """
    if folds is not None and fold is not None:
        assignment, how = kfold(data, labels, ids, folds, seed)
        valid = (assignment == fold).to_numpy()
        return [i for i, v in zip(ids, valid) if not v], [i for i, v in zip(ids, valid) if v], f"fold {fold} of {how}"
    if val_frac is None and "fold" in labels:
        valid = (labels["fold"].reindex(ids) == "valid").to_numpy()
        return [i for i, v in zip(ids, valid) if not v], [i for i, v in zip(ids, valid) if v], "the table's fold column"
    frac = 0.2 if val_frac is None else val_frac
    if frac <= 0:
        return list(ids), [], "no validation"
    folds = patient_folds(_patients(data, labels, ids), frac, seed, labels[list(LABELS)].reindex(ids))
    valid = set(folds.index[folds.to_numpy() == "valid"])
    return [i for i in ids if i not in valid], [i for i in ids if i in valid], f"{frac:.0%} of patients (seed {seed})"


def prepare(
    data: Converted,
    labels: str | Path | None = None,
    val_frac: float | None = None,
    seed: int = 42,
    max_images: int | None = None,
    folds: int | None = None,
    fold: int | None = None,
) -> TrainSet:
    """DATA's images with labels attached, the labelled ones kept, the optional seeded subset taken, split by patient."""
    source = data.images
    table, labels_file = resolve_labels(data, Path(labels) if labels else None)
    present = set(source.ids)
    labelled = set(table.index[table[list(LABELS)].notna().all(axis=1)])
    ids = [i for i in source.ids if i in labelled]
    notes = []
    missing = len(labelled - present)
    if missing:
        notes.append(f"{missing} labelled images are not in {data.folder} and are skipped")
    if not ids:
        raise IchprepError(f"{data.folder}: none of its {len(source.ids)} images has a label")
    if max_images is not None and max_images < len(ids):
        keep = np.sort(np.random.default_rng(seed).choice(len(ids), max_images, replace=False))
        ids = [ids[k] for k in keep]
    train_ids, val_ids, how = split(data, table, ids, val_frac, seed, folds, fold)
    notes.append(f"{len(train_ids)} train / {len(val_ids)} validation images, split by {how}")
    rate = table.loc[train_ids, list(LABELS)].to_numpy(dtype=np.float64).mean(axis=0)
    return TrainSet(data, table, train_ids, val_ids, series_table(data, table), rate, true_rates(labels_file, rate), notes)

"""Patient-grouped splits, shared by clean-meta, train and train-series: every image of a patient on one side.

A patient's slices are near-copies of each other; a fold that held some of them for training and
others for validation would score memory, not generalisation. ``patient_folds`` draws clean-meta's
train / valid split (spec §3.5); ``patient_kfold`` deals the K folds of ``train --folds``: patients
with a positive slice first, each to the fold with the fewest of them so far (the fewest images
breaking ties), then the others, each to the fold with the fewest images, so the folds' positive
patients differ by one at most, and their images by about one patient's.
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


def patient_folds(patients: pd.Series, val_frac: float, seed: int, labels: pd.DataFrame | None = None) -> pd.Series:
    """The fold ("train" or "valid") of each row, whole patients at a time (spec §3.5).

    Slices of one patient are near-duplicates, so a per-image split would leak. The patients
    are sorted before the seeded shuffle so the split does not depend on row order, and
    ``round(val_frac * n_patients)`` of them go to "valid". With ``labels`` (0/1 columns on the
    rows' index) the draw is then corrected by ``cover_classes``: on a small data set a plain draw
    can leave validation without a single positive, and then every AUC is undefined and the
    validation loss measures nothing.
    """
    unique = np.sort(patients.dropna().unique().astype(str))
    order = list(np.random.default_rng(seed).permutation(unique))
    valid = order[: int(round(val_frac * len(unique)))]
    if labels is not None and valid:
        valid = cover_classes(valid, order, patient_classes(patients, labels))
    folds = np.where(patients.astype(str).isin(set(valid)), "valid", "train")
    return pd.Series(folds, index=patients.index, dtype=object).where(patients.notna(), None)


def patient_classes(patients: pd.Series, labels: pd.DataFrame) -> pd.DataFrame:
    """Which classes each patient has: a column per label (a positive) and per ``no <label>`` (a negative).

    Rows without a label (NA) count as neither.
    """
    known = patients.notna()
    keys = patients[known].astype(str)
    rows = labels.loc[known]
    positive = rows.eq(1).fillna(False).groupby(keys).any()
    negative = rows.eq(0).fillna(False).groupby(keys).any().add_prefix("no ")
    return pd.concat([positive, negative], axis=1).astype(bool)


def cover_classes(valid: list[str], order: list[str], has: pd.DataFrame) -> list[str]:
    """The validation patients changed as little as possible to hold every class two or more patients have.

    ``has`` is ``patient_classes``' table and ``order`` the seeded order the patients were drawn
    in. Classes are taken rarest first; for each one validation lacks, the first patient in
    ``order`` who has it, and whose move leaves training every class it had, joins, and the
    last-drawn patient whose classes the rest of validation still holds leaves (so the fold keeps
    its size wherever it can). A class that only one patient has cannot be on both sides and is
    left where the draw put it.
    """
    counts = has.sum()
    needed = sorted((c for c in has.columns if counts[c] >= 2), key=lambda c: counts[c])
    valid = list(valid)
    for k, cls in enumerate(needed):
        if has.loc[valid, cls].any():
            continue
        joining = _spare_holder(has, order, valid, cls, needed)
        if joining is None:
            continue
        valid.append(joining)
        keep = needed[: k + 1]
        leaving = next((p for p in reversed(valid[:-1]) if has.loc[[q for q in valid if q != p], keep].any().all()), None)
        if leaving is not None:
            valid.remove(leaving)
    return valid


def _spare_holder(has: pd.DataFrame, order: list[str], valid: list[str], cls: str, needed: list[str]) -> str | None:
    """The first patient in ``order`` outside ``valid`` who has ``cls`` and is not training's last holder of a needed class."""
    chosen = set(valid)
    train = [p for p in order if p not in chosen]
    last_holders = has.loc[train, needed].sum() == 1
    return next((p for p in train if has.at[p, cls] and not (last_holders & has.loc[p, needed]).any()), None)


def patients_of(ids: list[str], *sources: pd.Series | None) -> pd.Series:
    """The patient of each id (a Series on ``ids``): from the first source that knows it, else the id itself.

    ``sources`` are id -> patient tables in order of trust (the label table's PatientID, clean-meta's
    meta table, the manifest's, the series as a last resort): a patient is never split between
    training and validation, and an image nothing places stands alone.
    """
    out = pd.Series(np.nan, index=pd.Index(ids), dtype=object)
    for source in sources:
        if source is not None and out.isna().any():
            out = out.fillna(source[~source.index.duplicated()].reindex(out.index))
    return out.fillna(pd.Series(ids, index=out.index)).astype(str)


def fold_column(given: pd.Series, ids: list[str], patients: pd.Series, k: int) -> pd.Series | None:
    """The folds of a table's own integer ``fold`` column (id -> fold) spread to every id through its patient;
    None unless that places every id and uses exactly the folds 0..k-1."""
    numbers = pd.to_numeric(given, errors="coerce").dropna()
    if numbers.empty or (numbers % 1 != 0).any():
        return None
    by_patient = numbers.astype(int).groupby(patients.reindex(numbers.index)).first()
    folds = patients.reindex(ids).map(by_patient)
    if folds.isna().any() or set(folds.astype(int)) != set(range(k)):
        return None
    return folds.astype(int)


def kfold(ids: list[str], patients: pd.Series, k: int, seed: int, positive: pd.Series,
          given: pd.Series | None = None) -> tuple[pd.Series, str]:
    """The fold (0..k-1) of every id and how it was decided: the table's own integer fold column when it places
    every id, else whole patients dealt by ``patient_kfold``."""
    if given is not None:
        folds = fold_column(given, ids, patients, k)
        if folds is not None:
            return folds, "the table's fold column"
    return patient_kfold(patients.reindex(ids), k, seed, positive.reindex(ids).fillna(False)), \
        f"{k} patient-grouped folds (seed {seed})"


def holdout(ids: list[str], patients: pd.Series, val_frac: float | None, seed: int, labels: pd.DataFrame,
            valid_patients: set[str] | None = None) -> tuple[np.ndarray, str]:
    """Which ids validate (a boolean array) and how that was decided: the patients a table marked ``valid``
    (``valid_patients``, used when ``val_frac`` is None), else ``val_frac`` of the patients, drawn by ``patient_folds``."""
    chosen = patients.reindex(ids)
    if val_frac is None and valid_patients is not None:
        return chosen.isin(valid_patients).to_numpy(), "the table's fold column"
    frac = 0.2 if val_frac is None else val_frac
    if frac <= 0:
        return np.zeros(len(ids), dtype=bool), "no validation"
    folds = patient_folds(chosen, frac, seed, labels.reindex(ids))
    return (folds == "valid").to_numpy(), f"{frac:.0%} of patients (seed {seed})"

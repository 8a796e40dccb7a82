"""Jeremy Howard's cleaning rules (spec §3) applied to the metadata table.

Each rule is a pure function of the table and one option, so a notebook can apply or vary
any of them alone. ``clean`` runs them in the kernel's order: unreadable files, then
little-brain slices, then negative sampling on what is left (so the ratio is of the
positives that survive the filter), and finally the PatientID-grouped validation fold.
Rows are never deleted from ``meta``: each gets ``keep`` and the first rule that dropped it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.labels import ID_COLUMN, compare_ids
from ichprep.splits import patient_folds

UNREADABLE = "unreadable"
LITTLE_BRAIN = "little_brain"
UNLABELLED = "unlabelled"
SAMPLED_OUT = "sampled_out"
DROP_REASONS: tuple[str, ...] = (UNREADABLE, LITTLE_BRAIN, UNLABELLED, SAMPLED_OUT)
"""Why a row was dropped, in the order the rules run (a row records the first that hit it)."""

TRAIN_COLUMNS: tuple[str, ...] = (
    ID_COLUMN, *LABELS, "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "ImagePositionPatient2",
    "slice_index", "series_len", "prev_id", "next_id", "fold", "fname", "header_fix",
    "img_pct_window", "img_mean", "img_std", "img_min", "img_max", "BitsStored", "PixelRepresentation",
    "RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth", "Rows", "Columns",
    "PixelSpacing", "PixelSpacing1",
)
"""Columns of train.parquet: what a trainer or a neighbour-slice loader needs, in this order."""


@dataclass(frozen=True)
class CleanOptions:
    """Every cleaning rule's knob; the defaults are the spec's values.

    ``min_brain``: drop slices with less than this fraction of pixels in 0 < HU < 80.
    ``neg_ratio``: negatives kept per positive (``any == 1``) when ``sample`` is on.
    ``val_frac``: fraction of patients in the validation fold.
    ``seed``: one seed for both the negative sample and the fold split.
    """

    min_brain: float = 0.02
    neg_ratio: float = 1.0
    seed: int = 42
    val_frac: float = 0.2
    sample: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_brain <= 1.0:
            raise IchprepError(f"--min-brain must be in [0, 1], got {self.min_brain}")
        if not self.neg_ratio >= 0.0:
            raise IchprepError(f"--neg-ratio must be >= 0, got {self.neg_ratio}")
        if not 0.0 <= self.val_frac < 1.0:
            raise IchprepError(f"--val-frac must be in [0, 1), got {self.val_frac}")


def unreadable(table: pd.DataFrame) -> pd.Series:
    """Rows whose pixels could not be decoded (spec §3.1): ``img_pct_window`` is missing."""
    return table["img_pct_window"].isna()


def little_brain(table: pd.DataFrame, min_brain: float) -> pd.Series:
    """Rows with less than ``min_brain`` of their pixels in the brain window (spec §3.3)."""
    return table["img_pct_window"] < min_brain


def sample_negatives(any_label: pd.Series, ids: pd.Series, candidates: pd.Series,
                     neg_ratio: float, seed: int) -> pd.Series:
    """Negatives to drop so that ``neg_ratio`` negatives per positive remain (spec §3.4).

    Only ``candidates`` rows take part. The sample is drawn from the negatives sorted by id, so
    it depends on the set of images and the seed, not on the order files were listed in.
    """
    positives = int((candidates & (any_label == 1)).sum())
    negatives = candidates & (any_label == 0)
    neg_ids = np.sort(ids[negatives].to_numpy(dtype=str))
    n_keep = min(len(neg_ids), int(round(neg_ratio * positives)))
    rng = np.random.default_rng(seed)
    kept = set(rng.choice(neg_ids, size=n_keep, replace=False)) if n_keep else set()
    return negatives & ~ids.isin(kept)


def _label_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Positives per label column (an empty dict when the table has no labels)."""
    return {name: int(frame[name].sum()) for name in LABELS if name in frame.columns}


def _attach_labels(table: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """Left-join the label columns on SOPInstanceUID; images without labels get <NA>."""
    meta = table.drop(columns=[c for c in LABELS if c in table.columns])
    if labels is None:
        return meta
    joined = meta.merge(labels[[ID_COLUMN, *LABELS]], on=ID_COLUMN, how="left", validate="many_to_one")
    for name in LABELS:
        joined[name] = joined[name].astype("UInt8")
    return joined.set_axis(meta.index)


def train_table(meta: pd.DataFrame) -> pd.DataFrame:
    """The kept rows with the TRAIN_COLUMNS that exist, label columns as plain uint8.

    Rows go series by series in slice order, so the file reads like the scans and does not
    depend on the order the files were listed in.
    """
    columns = [c for c in TRAIN_COLUMNS if c in meta.columns]
    order = [c for c in ("SeriesInstanceUID", "slice_index", ID_COLUMN) if c in meta.columns]
    kept = meta.loc[meta["keep"], columns].sort_values(order, kind="stable").reset_index(drop=True)
    for name in LABELS:
        if name in kept.columns:
            kept[name] = kept[name].astype(np.uint8)
    for name in ("slice_index", "series_len"):
        if name in kept.columns and kept[name].notna().all():
            kept[name] = kept[name].astype(np.int64)
    return kept


def clean(table: pd.DataFrame, labels: pd.DataFrame | None,
          options: CleanOptions = CleanOptions()) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Apply the cleaning rules: ``(meta, train, report)``.

    ``table`` is ``meta.build_table``'s output, ``labels`` ``labels.read_labels``'s (or None
    for a test set: then nothing is sampled and no row is unlabelled). ``meta`` is every row
    with labels joined, ``keep``, ``drop_reason`` and ``fold``; ``train`` the kept rows.
    """
    meta = _attach_labels(table, labels)
    rules: list[tuple[str, pd.Series]] = [
        (UNREADABLE, unreadable(meta)),
        (LITTLE_BRAIN, little_brain(meta, options.min_brain)),
    ]
    if labels is not None:
        rules.append((UNLABELLED, meta["any"].isna()))
    reason = np.full(len(meta), None, dtype=object)
    for name, hit in rules:
        reason[pd.isna(reason) & hit.to_numpy(dtype=bool, na_value=False)] = name
    if labels is not None and options.sample:
        candidates = pd.Series(pd.isna(reason), index=meta.index)
        sampled = sample_negatives(meta["any"], meta[ID_COLUMN], candidates, options.neg_ratio, options.seed)
        reason[sampled.to_numpy(dtype=bool, na_value=False)] = SAMPLED_OUT
    meta["keep"] = pd.isna(reason)
    meta["drop_reason"] = pd.Series(reason, index=meta.index, dtype=object)
    meta["fold"] = patient_folds(meta["PatientID"].fillna(meta[ID_COLUMN]), options.val_frac, options.seed,
                                 meta[list(LABELS)] if labels is not None else None)
    train = train_table(meta)
    report = build_report(meta, train, labels, options)
    return meta, train, report


def build_report(meta: pd.DataFrame, train: pd.DataFrame, labels: pd.DataFrame | None,
                 options: CleanOptions) -> dict[str, Any]:
    """What the cleaning did, as plain JSON-able numbers: printed and saved as report.json."""
    labelled = meta[meta["any"].notna()] if labels is not None else meta.iloc[:0]
    report: dict[str, Any] = {
        "options": asdict(options),
        "rows_in": len(meta),
        "rows_kept": len(train),
        "dropped": {name: int((meta["drop_reason"] == name).sum()) for name in DROP_REASONS},
        "header_fix": int(meta["header_fix"].fillna(False).astype(bool).sum()) if "header_fix" in meta else 0,
        "labelled": labels is not None,
        "positives_before": _label_counts(labelled),
        "positives_after": _label_counts(train),
        "negatives_before": int((labelled["any"] == 0).sum()) if labels is not None else 0,
        "negatives_after": int((train["any"] == 0).sum()) if "any" in train else 0,
        "folds": {
            fold: {"rows": int((train["fold"] == fold).sum()),
                   "patients": int(train.loc[train["fold"] == fold, "PatientID"].nunique())}
            for fold in ("train", "valid")
        },
    }
    if labels is not None:
        report["ids"] = compare_ids(meta[ID_COLUMN], labels[ID_COLUMN])
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as a few human lines for stdout."""
    lines = [f"rows in: {report['rows_in']}, kept: {report['rows_kept']}, "
             f"header fixed: {report['header_fix']}"]
    lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in report["dropped"].items()))
    if report["labelled"]:
        before, after = report["positives_before"], report["positives_after"]
        lines.append("positives (before -> after): " + ", ".join(
            f"{name} {before.get(name, 0)} -> {after.get(name, 0)}" for name in LABELS))
        lines.append(f"negatives: {report['negatives_before']} -> {report['negatives_after']}")
        ids = report["ids"]
        for key, text in (("in_labels_not_data", "ids in labels but not in data"),
                          ("in_data_not_labels", "ids in data but not in labels")):
            if ids[key]:
                lines.append(f"{text}: {ids[key]} (e.g. {', '.join(ids[key + '_examples'])})")
    else:
        lines.append("no labels: nothing sampled")
    folds = report["folds"]
    lines.append("folds: " + ", ".join(
        f"{fold} {v['rows']} rows / {v['patients']} patients" for fold, v in folds.items()))
    return "\n".join(lines)

"""The metadata table (spec §1) and the ``clean-meta`` pipeline that writes its outputs.

The table is built from convert's manifest (one row per input, header + pixel statistics)
so that cleaning never re-reads a DICOM; a DICOM source is scanned once through
``ichprep.convert.run.pipeline.scan``. Everything here is vectorised pandas: the stage 1 table has
674,258 rows, and a per-row Python loop would make the notebook user wait minutes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprep import layout
from ichprep.convert.read.dicom import needs_fix
from ichprep.convert.run.manifest import plain_column
from ichprep.labels import ID_COLUMN, read_labels
from ichprep.meta.cleaning import CleanOptions, clean, format_report
from ichprep.paths import existing, existing_source, is_local, output_folder
from ichprep.store import open_converted

SERIES_COLUMNS: tuple[str, ...] = ("slice_index", "series_len", "prev_id", "next_id")
"""Where each slice sits in its series, sorted by ImagePositionPatient2 (z)."""


def fix_mask(table: pd.DataFrame) -> pd.Series:
    """``ichprep.convert.read.dicom.needs_fix`` of every row: the signed-as-unsigned header bug.

    Used only when a manifest lacks ``header_fix`` (convert records it per file).
    """
    def number(name: str) -> pd.Series:
        column = table[name] if name in table else pd.Series(np.nan, index=table.index)
        return pd.to_numeric(column, errors="coerce")

    return needs_fix(number("PixelRepresentation"), number("BitsStored"), number("RescaleIntercept"))


def series_position(table: pd.DataFrame) -> pd.DataFrame:
    """``slice_index``, ``series_len``, ``prev_id``, ``next_id`` for every row of ``table``.

    Slices are ordered by ImagePositionPatient2 within SeriesInstanceUID (ties and missing z
    by id, last), the order neighbour-slice models stack them in. A row without a series has
    no neighbours: index <NA>, length <NA>, ids None.
    """
    z = pd.to_numeric(table.get("ImagePositionPatient2"), errors="coerce")
    frame = pd.DataFrame({"series": table["SeriesInstanceUID"], "z": z, "id": table[ID_COLUMN]},
                         index=table.index)
    ordered = frame[frame["series"].notna()].sort_values(["series", "z", "id"], na_position="last", kind="stable")
    groups = ordered.groupby("series", sort=False)
    position = pd.DataFrame(index=ordered.index)
    position["slice_index"] = groups.cumcount().astype("Int64")
    position["series_len"] = groups["id"].transform("size").astype("Int64")
    position["prev_id"] = groups["id"].shift(1)
    position["next_id"] = groups["id"].shift(-1)
    position = position.reindex(table.index)
    for name in ("prev_id", "next_id"):
        position[name] = position[name].astype(object).where(position[name].notna(), None)
    return position


def build_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """The metadata table: manifest rows + ``fname``, ``header_fix`` and series position.

    Keeps every row, failed ones included (their ``img_pct_window`` is NaN, which the
    cleaning drops as unreadable). ``SOPInstanceUID`` falls back to the manifest ``id``
    (the file stem) where a header could not be read.
    """
    table = manifest.reset_index(drop=True).copy()
    if "id" in table:
        ids = table[ID_COLUMN] if ID_COLUMN in table else pd.Series(None, index=table.index, dtype=object)
        table[ID_COLUMN] = ids.fillna(table["id"])
    if "fname" not in table:
        table["fname"] = table.get("source")
    if "header_fix" not in table:
        table["header_fix"] = fix_mask(table)
    table["header_fix"] = table["header_fix"].fillna(False).astype(bool)
    for name in ("img_min", "img_max", "img_mean", "img_std", "img_pct_window"):
        table[name] = pd.to_numeric(table[name], errors="coerce") if name in table else np.nan
    for name in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "ImagePositionPatient2"):
        if name not in table:
            table[name] = None
    table = pd.DataFrame({name: plain_column(table[name]) for name in table.columns})
    table = table.drop(columns=[c for c in SERIES_COLUMNS if c in table.columns])
    return pd.concat([table, series_position(table)], axis=1)


def load_source(source: str | Path, jobs: int | None = None, quiet: bool = True, headers: tuple[str, ...] = ()) -> pd.DataFrame:
    """Manifest rows for ``source``: convert's output folder, a manifest.parquet, or DICOMs.

    A manifest is preferred (no DICOM is read again); anything else (a URL or stream too, with
    ``headers`` for its requests) is scanned with ``ichprep.convert.run.pipeline.scan``, which
    returns the same rows.
    """
    path = Path(source)
    manifest = open_converted(path).manifest if is_local(source) and path.is_dir() else None
    if manifest is not None:
        return manifest
    if is_local(source) and path.suffix == ".parquet":
        return pd.read_parquet(path)
    from ichprep.convert import scan

    return scan(source, jobs=jobs, quiet=quiet, headers=headers)


def feather_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy Feather accepts: default RangeIndex and string column names."""
    out = frame.reset_index(drop=True)
    out.columns = [str(c) for c in out.columns]
    return out


def write_outputs(out: Path, meta: pd.DataFrame, train: pd.DataFrame, labels: pd.DataFrame | None,
                  report: dict[str, Any]) -> None:
    """meta/train/labels Parquet, Jeremy-named Feather copies, report.json and report.png."""
    from ichprep.plots.report import plot_report

    out.mkdir(parents=True, exist_ok=True)
    meta.to_parquet(out / layout.META_TABLE, index=False)
    train.to_parquet(out / layout.TRAIN_TABLE, index=False)
    feather_ready(train).to_feather(out / layout.TRAIN_FEATHER)
    feather_ready(meta).to_feather(out / layout.META_FEATHER)
    if labels is not None:
        labels.to_parquet(out / layout.LABELS_TABLE, index=False)
        feather_ready(labels.rename(columns={ID_COLUMN: "ID"})).to_feather(out / layout.LABELS_FEATHER)
    (out / layout.REPORT).write_text(json.dumps(report, indent=2) + "\n")
    plot_report(meta, report, out / layout.REPORT_PLOT)


def clean_meta(source: str | Path, labels: str | Path | None, out: str | Path,
               options: CleanOptions = CleanOptions(), jobs: int | None = None,
               quiet: bool = True, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Build, clean and write everything ``ichprep clean-meta`` writes; returns the report."""
    existing_source(source, "SOURCE")
    if labels is not None:
        existing(Path(labels), "--labels", "file")
    output_folder(Path(out), "--out")
    label_table = read_labels(labels) if labels is not None else None
    table = build_table(load_source(source, jobs=jobs, quiet=quiet, headers=headers))
    meta, train, report = clean(table, label_table, options)
    write_outputs(Path(out), meta, train, label_table, report)
    return report


__all__ = ["CleanOptions", "build_table", "clean", "clean_meta", "format_report", "load_source",
           "read_labels", "series_position", "write_outputs"]

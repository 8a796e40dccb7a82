"""Read the competition's long label CSV into one 0/1 row per image.

``stage_1_train.csv`` has six rows an image (``ID_<image>_<subtype>,<0|1>``) and repeats a few
of them. A mistake in a hand-edited or truncated CSV would otherwise surface much later as NaN
labels in training, so every malformed line is refused here with its line number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ichprep import LABELS
from ichprep.errors import LabelsError

ID_COLUMN = "SOPInstanceUID"
"""Column the pivoted labels are keyed by: the image id, equal to the DICOM SOPInstanceUID."""

_HEADER_LINE = 1
"""CSV line numbers are 1-based and line 1 is the header, so data row i is on line i + 2."""


def _line(position: int) -> int:
    """Line number in the CSV file of the data row at 0-based ``position``."""
    return position + _HEADER_LINE + 1


def _first_bad(mask: pd.Series) -> int:
    """Position of the first True in ``mask``."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def _split_ids(raw: pd.DataFrame, where: str) -> pd.DataFrame:
    """Split ``ID`` at its last underscore into image and subtype, refusing unknown subtypes.

    Done in Arrow: pandas' ``str.rsplit`` is a Python loop, seconds per million rows.
    """
    ids = pc.utf8_trim_whitespace(pa.array(raw["ID"], type=pa.string(), from_pandas=True))
    parts = pc.split_pattern(ids, "_", max_splits=1, reverse=True)
    whole = pc.equal(pc.list_value_length(parts), 2)
    if not pc.all(whole).as_py():  # an ID without "_" splits as "_": empty image, empty subtype
        parts = pc.split_pattern(pc.if_else(whole, ids, "_"), "_", max_splits=1, reverse=True)
    image = pd.Series(pc.list_element(parts, 0), dtype="str")
    subtype = pd.Series(pc.list_element(parts, 1), dtype="str")
    unknown = (~subtype.isin(LABELS) | (image.str.len() == 0)).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise LabelsError(
            f"{where} line {_line(i)}: unknown subtype in ID {raw['ID'].iloc[i]!r} "
            f"(expected ID_<image>_<subtype> with subtype one of {', '.join(LABELS)})"
        )
    lines = np.arange(len(raw)) + _HEADER_LINE + 1
    return pd.DataFrame({"image": image, "subtype": subtype, "line": lines})


def _parse_labels(raw: pd.DataFrame, where: str) -> pd.Series:
    """The ``Label`` column as 0/1 integers; anything else is refused with its line."""
    text = raw["Label"].str.strip()
    bad = ~text.isin(("0", "1"))
    if bad.any():
        i = _first_bad(bad)
        raise LabelsError(f"{where} line {_line(i)}: label must be 0 or 1, got {raw['Label'].iloc[i]!r}")
    return (text == "1").astype(np.uint8)


def _drop_duplicates(long: pd.DataFrame, where: str) -> pd.DataFrame:
    """Drop repeated (image, subtype) rows; a repeat with a different label is an error."""
    conflicting = long.groupby(["image", "subtype"], sort=False)["label"].transform("nunique") > 1
    if conflicting.any():
        i = _first_bad(conflicting)
        image, subtype = long["image"].iloc[i], long["subtype"].iloc[i]
        lines = long.loc[(long["image"] == image) & (long["subtype"] == subtype), "line"].tolist()
        raise LabelsError(
            f"{where} lines {', '.join(map(str, lines))}: conflicting labels for {image}_{subtype}"
        )
    return long.drop_duplicates(["image", "subtype"])


def pivot_labels(raw: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    """One row per image (in first-seen order) with the six LABELS columns as uint8 0/1.

    ``raw`` holds the CSV's ``ID`` and ``Label`` columns as strings; ``where`` names the source
    in error messages.
    """
    missing = [c for c in ("ID", "Label") if c not in raw.columns]
    if missing:
        raise LabelsError(
            f"{where}: missing column(s) {', '.join(missing)}; expected the header ID,Label "
            f"(found {', '.join(map(str, raw.columns)) or 'nothing'})"
        )
    long = _split_ids(raw, where)
    long["label"] = _parse_labels(raw, where).to_numpy()
    long = _drop_duplicates(long, where)
    wide = long.pivot(index="image", columns="subtype", values="label")
    wide = wide.reindex(index=pd.unique(long["image"]), columns=list(LABELS))
    incomplete = wide.isna().any(axis=1)
    if incomplete.any():
        image = wide.index[_first_bad(incomplete)]
        absent = [s for s in LABELS if pd.isna(wide.at[image, s])]
        raise LabelsError(f"{where}: image {image} has no row for subtype(s) {', '.join(absent)}")
    out = wide.astype(np.uint8).rename_axis(index=None, columns=None)
    return out.rename_axis(ID_COLUMN).reset_index()


def read_labels(csv: str | Path) -> pd.DataFrame:
    """Read a competition labels CSV into one row per image: ``SOPInstanceUID`` + LABELS (0/1)."""
    path = Path(csv)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, engine="pyarrow")
    except (pa.ArrowInvalid, ValueError):
        raw = None  # re-read below with pandas' own parser, whose errors name the line
    try:
        raw = raw if raw is not None else pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from exc
    except pd.errors.EmptyDataError as exc:
        raise LabelsError(f"{path}: empty file; expected the header ID,Label") from exc
    return pivot_labels(raw, str(path))


TABLE_READERS = {".parquet": pd.read_parquet, ".fth": pd.read_feather, ".feather": pd.read_feather}
"""Table files that may hold labels: clean-meta's train.parquet, labels.parquet, and their Feather copies."""


def load_table(path: str | Path) -> pd.DataFrame:
    """Labels from the competition's long CSV or a table with ``SOPInstanceUID`` and the six label columns.

    A table keeps its other columns (fold, PatientID, SeriesInstanceUID, ImagePositionPatient2),
    which the training split and the neighbour stacking use. Anything else is a ``LabelsError``
    naming the file, so a wrong ``--labels`` ends before any work.
    """
    path = Path(path)
    reader = TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        return read_labels(path)
    try:
        table = reader(path)
    except (OSError, ValueError) as err:
        raise LabelsError(f"{path}: not a readable {path.suffix} table ({' '.join(str(err).split())[:200]})") from None
    if ID_COLUMN not in table and "ID" in table:
        table = table.rename(columns={"ID": ID_COLUMN})
    missing = [c for c in (ID_COLUMN, *LABELS) if c not in table.columns]
    if missing:
        raise LabelsError(f"{path}: no column(s) {', '.join(missing)}; give the labels CSV or clean-meta's train.parquet")
    return table


def load_labels(path: str | Path) -> pd.DataFrame:
    """Labels indexed by image id (``load_table``), as the split, the Dataset and evaluate look them up."""
    return load_table(path).set_index(ID_COLUMN).rename_axis("id")


def compare_ids(data_ids: pd.Series, label_ids: pd.Series, examples: int = 5) -> dict[str, object]:
    """Counts and a few examples of ids present on only one side of the labels join.

    Neither case is fatal (a partial download or a labels file for a larger set is normal),
    but both are worth a line in the report.
    """
    data_set, label_set = set(data_ids.dropna()), set(label_ids.dropna())
    only_labels, only_data = sorted(label_set - data_set), sorted(data_set - label_set)
    return {
        "in_labels_not_data": len(only_labels),
        "in_labels_not_data_examples": only_labels[:examples],
        "in_data_not_labels": len(only_data),
        "in_data_not_labels_examples": only_data[:examples],
    }

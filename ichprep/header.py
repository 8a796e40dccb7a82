"""Flatten a DICOM header into one table row, as Jeremy Howard's metadata DataFrame did.

Every data element of the data set (not the file meta group) except Pixel Data becomes a
column named by its keyword. A multi-valued element ``K`` becomes ``K`` (first value),
``K1``, ``K2``, ... plus a flag ``MultiK = 1``. Values are cast to plain Python types so
the table saves as Parquet or Feather. Sequences and binary values carry no tabular meaning
and are left out (fastai crashed on empty sequences; we skip them instead). Private
elements have no keyword and are left out too.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

PIXEL_DATA_TAG = 0x7FE00010
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"})


def scalar(value: Any) -> Any:
    """Cast one pydicom value to a plain int, float or str (None for empty)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    text = str(value)
    return text if text != "" else None


def flatten(ds: Dataset) -> dict[str, Any]:
    """One row of plain values for every keyword element of ``ds`` but Pixel Data."""
    row: dict[str, Any] = {}
    for elem in ds:
        if elem.tag == PIXEL_DATA_TAG or elem.VR in _BINARY_VRS:
            continue
        keyword = elem.keyword
        if not keyword:
            continue
        try:
            value = elem.value
        except Exception:  # an undecodable value must not lose the rest of the row
            continue
        if isinstance(value, (MultiValue, list, tuple)):
            values = list(value)
            if not values:
                row[keyword] = None
                continue
            if len(values) > 1:
                row[f"Multi{keyword}"] = 1
            for i, v in enumerate(values):
                row[keyword if i == 0 else f"{keyword}{i}"] = scalar(v)
        else:
            row[keyword] = scalar(value)
    return row

"""Flatten a DICOM header into one table row, as Jeremy Howard's metadata DataFrame did.

Every data element of the data set (not the file meta group) except Pixel Data becomes a
column named by its keyword. A multi-valued element ``K`` becomes ``K`` (first value),
``K1``, ``K2``, ... plus a flag ``MultiK = 1``. Values are cast to plain Python types so
the table saves as Parquet or Feather. Sequences and binary values carry no tabular meaning
and are left out (fastai crashed on empty sequences; we skip them instead). Private
elements have no keyword and are left out too, before their values are ever decoded.

One odd element must not cost the whole row: elements are converted one at a time, and a
text element pydicom refuses to convert (e.g. under strict validation) keeps its raw text.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

PIXEL_DATA_TAG = 0x7FE00010
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                       "UC", "UI", "UR", "UT"})
_SINGLE_VALUED_TEXT_VRS = frozenset({"LT", "ST", "UR", "UT"})
"""Text VRs whose backslashes are characters, not value separators."""


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
        value = value.decode("latin-1").strip("\x00 ")
    text = str(value)
    return text if text != "" else None


def _raw_text(ds: Dataset, tag: int) -> tuple[str, Any] | None:
    """(keyword, undecoded text) of a text element pydicom refused to convert, else None.

    Returns one string, or a list of strings for a multi-valued text element.
    """
    raw = ds.get_item(tag)
    if not isinstance(raw, RawDataElement):
        return None
    try:
        vr, keyword = raw.VR or dictionary_VR(tag), keyword_for_tag(tag)
    except KeyError:
        return None
    if vr not in _TEXT_VRS or not keyword:
        return None
    text = (raw.value or b"").decode("latin-1").strip("\x00 ")
    return keyword, (text if vr in _SINGLE_VALUED_TEXT_VRS or "\\" not in text else text.split("\\"))


def _element(ds: Dataset, tag: int) -> tuple[str, Any] | None:
    """(keyword, value) of one element, or None when it has no tabular meaning."""
    try:
        elem = ds[tag]
        vr, keyword, value = elem.VR, elem.keyword, elem.value
    except Exception:  # strict validation or a damaged value: fall back to the raw text
        return _raw_text(ds, tag)
    if vr in _BINARY_VRS or not keyword:
        return None
    return keyword, value


def flatten(ds: Dataset) -> dict[str, Any]:
    """One row of plain values for every keyword element of ``ds`` but Pixel Data."""
    row: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag == PIXEL_DATA_TAG or tag.is_private:
            continue
        found = _element(ds, tag)
        if found is None:
            continue
        keyword, value = found
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

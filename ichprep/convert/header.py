"""Flatten a DICOM header into one table row, as Jeremy Howard's metadata DataFrame did.

Every data element of the data set (not the file meta group) except Pixel Data becomes a
column named by its keyword. A multi-valued element ``K`` becomes ``K`` (first value),
``K1``, ``K2``, ... plus a flag ``MultiK = 1``. Values are cast to plain Python types so
the table saves as Parquet or Feather. Sequences and binary values carry no tabular meaning
and are left out (fastai crashed on empty sequences; we skip them instead). Private
elements have no keyword and are left out too, before their values are ever decoded.

One odd element must not cost the whole row: elements are converted one at a time, and a
text element pydicom refuses to convert (e.g. under strict validation) keeps its raw text.

Speed: building pydicom's value objects (DSfloat, MultiValue, validated UIDs) costs more than
reading the file, so the common elements (numbers, and text in the default or Latin-1
character set) are decoded straight from the raw bytes with pydicom's own stripping rules;
anything else (ambiguous or unknown VRs, other character sets, values that do not parse)
goes through pydicom. The tests compare both paths' output with pydicom's element values.
"""

from __future__ import annotations

import struct
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
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "UV": "Q", "SV": "q"}
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
"""Text VRs whose bytes depend on Specific Character Set; the others are always ASCII."""
_LATIN1_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100"})
_SLOW = object()
"""Marks a raw value the fast decoder leaves to pydicom."""


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


def _number(item: str, vr: str) -> Any:
    """One DS/IS item as pydicom parses it ('' stays ''), or _SLOW when it does not parse."""
    text = item.strip()
    if not text:
        return ""
    try:
        if vr == "DS":
            return float(text)
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return _SLOW
        return int(number) if vr == "IS" and number.is_integer() else _SLOW


def _text_items(text: str, vr: str) -> list[str] | str:
    """Split decoded text into values, stripping padding exactly as pydicom's converters do."""
    if vr in ("LT", "ST", "UT"):
        return text.rstrip("\0 ")
    if vr == "UR":
        return text.rstrip()
    if vr in ("LO", "SH", "UC"):
        return [v.rstrip("\0 ") for v in text.split("\\")]
    if vr == "AE":
        return [v.strip() for v in text.split("\\")]
    if vr == "DS":
        text = text.strip()
    return text.rstrip(" \x00").split("\\")


def _fast_value(raw: RawDataElement, vr: str) -> Any:
    """A raw element's value decoded without pydicom's value classes, or _SLOW."""
    data = raw.value
    if not data:
        return None
    if vr in _NUMBER_FORMATS:
        fmt = _NUMBER_FORMATS[vr]
        count, rest = divmod(len(data), struct.calcsize(fmt))
        if rest:
            return _SLOW
        values = struct.unpack(f"{'<' if raw.is_little_endian else '>'}{count}{fmt}", data)
        return values[0] if count == 1 else list(values)
    if vr not in _TEXT_VRS:
        return _SLOW
    items = _text_items(data.decode("latin-1"), vr)
    if isinstance(items, str):
        return items
    if vr in ("DS", "IS"):
        items = [_number(item, vr) for item in items]
        if any(item is _SLOW for item in items):
            return _SLOW
    return items[0] if len(items) == 1 else items


def _latin1(ds: Dataset) -> bool:
    """Whether the data set's text is in the default or Latin-1 character set."""
    try:
        charset = ds.get("SpecificCharacterSet", "")
    except Exception:
        return False
    return isinstance(charset, str) and charset.strip() in _LATIN1_CHARSETS


def _read(ds: Dataset, tag: int, latin1: bool) -> tuple[str, Any] | None:
    """(keyword, value) of one element: straight from the raw bytes where safe, else via pydicom."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.VR != "UN":
        try:
            vr, keyword = raw.VR or dictionary_VR(tag), keyword_for_tag(tag)
        except KeyError:
            return None
        if vr in _BINARY_VRS or not keyword:
            return None
        if latin1 or vr not in _CHARSET_VRS:
            value = _fast_value(raw, vr)
            if value is not _SLOW:
                return keyword, value
    return _element(ds, tag)


def flatten(ds: Dataset) -> dict[str, Any]:
    """One row of plain values for every keyword element of ``ds`` but Pixel Data."""
    row: dict[str, Any] = {}
    latin1 = _latin1(ds)
    for tag in sorted(ds.keys()):
        if tag == PIXEL_DATA_TAG or tag.is_private:
            continue
        found = _read(ds, tag, latin1)
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

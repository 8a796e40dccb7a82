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

The same decoding also runs on elements that never became pydicom objects
(``flatten_elements``, fed by ``ichprep.convert.read.elements`` for the competition's plain files):
there a value the fast decoder would leave to pydicom makes the whole row None, and the caller
reads the file with pydicom instead. pydicom itself is imported only when something needs it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, MutableSequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

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
CHARSET_TAG = 0x00080005

COMMON_TAGS: dict[int, tuple[str, str]] = {
    0x00080005: ("CS", "SpecificCharacterSet"),
    0x00080008: ("CS", "ImageType"),
    0x00080016: ("UI", "SOPClassUID"),
    0x00080018: ("UI", "SOPInstanceUID"),
    0x00080020: ("DA", "StudyDate"),
    0x00080060: ("CS", "Modality"),
    0x00100020: ("LO", "PatientID"),
    0x00180050: ("DS", "SliceThickness"),
    0x00180060: ("DS", "KVP"),
    0x0020000D: ("UI", "StudyInstanceUID"),
    0x0020000E: ("UI", "SeriesInstanceUID"),
    0x00200010: ("SH", "StudyID"),
    0x00200011: ("IS", "SeriesNumber"),
    0x00200013: ("IS", "InstanceNumber"),
    0x00200032: ("DS", "ImagePositionPatient"),
    0x00200037: ("DS", "ImageOrientationPatient"),
    0x00200052: ("UI", "FrameOfReferenceUID"),
    0x00201041: ("DS", "SliceLocation"),
    0x00280002: ("US", "SamplesPerPixel"),
    0x00280004: ("CS", "PhotometricInterpretation"),
    0x00280008: ("IS", "NumberOfFrames"),
    0x00280010: ("US", "Rows"),
    0x00280011: ("US", "Columns"),
    0x00280030: ("DS", "PixelSpacing"),
    0x00280100: ("US", "BitsAllocated"),
    0x00280101: ("US", "BitsStored"),
    0x00280102: ("US", "HighBit"),
    0x00280103: ("US", "PixelRepresentation"),
    0x00281050: ("DS", "WindowCenter"),
    0x00281051: ("DS", "WindowWidth"),
    0x00281052: ("DS", "RescaleIntercept"),
    0x00281053: ("DS", "RescaleSlope"),
}
"""(dictionary VR, keyword) of the elements of the competition's files and of CT slices in general,
as pydicom's data dictionary has them (a test checks): a process that reads only such files never
imports pydicom's dictionary, which costs a tenth of a second."""


def dictionary_entry(tag: int) -> tuple[str, str] | None:
    """(dictionary VR, keyword) of a tag, or None when the dictionary does not know it."""
    entry = COMMON_TAGS.get(tag)
    if entry is not None:
        return entry
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    try:
        return dictionary_VR(tag), keyword_for_tag(tag)
    except KeyError:
        return None


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
    from pydicom.dataelem import RawDataElement

    raw = ds.get_item(tag)
    if not isinstance(raw, RawDataElement):
        return None
    entry = dictionary_entry(tag)
    if entry is None:
        return None
    vr, keyword = raw.VR or entry[0], entry[1]
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


def _fast_value(data: bytes | None, vr: str, little_endian: bool = True) -> Any:
    """An element's undecoded value decoded without pydicom's value classes, or _SLOW."""
    if not data:
        return None
    if vr in _NUMBER_FORMATS:
        fmt = _NUMBER_FORMATS[vr]
        count, rest = divmod(len(data), struct.calcsize(fmt))
        if rest:
            return _SLOW
        values = struct.unpack(f"{'<' if little_endian else '>'}{count}{fmt}", data)
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
    from pydicom.dataelem import RawDataElement

    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and raw.VR != "UN":
        found = _decoded(tag, raw.VR, raw.value, latin1, raw.is_little_endian)
        if found is not _SLOW:
            return found
    return _element(ds, tag)


def _decoded(tag: int, file_vr: str | None, data: bytes | None, latin1: bool, little_endian: bool = True) -> Any:
    """(keyword, value) of an undecoded element, None when it has no tabular meaning, or _SLOW.

    ``file_vr`` is the VR written in the file (None in implicit VR: the dictionary's is used).
    """
    if file_vr is not None:
        keyword = (dictionary_entry(tag) or ("", ""))[1]
        vr = file_vr
    else:
        entry = dictionary_entry(tag)
        if entry is None:
            return None
        vr, keyword = entry
    if vr in _BINARY_VRS or not keyword:
        return None
    if not latin1 and vr in _CHARSET_VRS:
        return _SLOW
    value = _fast_value(data, vr, little_endian)
    return _SLOW if value is _SLOW else (keyword, value)


def _add(row: dict[str, Any], keyword: str, value: Any) -> None:
    """Put one element's value in the row: ``K``, or ``K``, ``K1``, ... and ``MultiK`` for several values.

    A list (or pydicom's MultiValue, a MutableSequence) is several values; text never is.
    """
    if isinstance(value, (MutableSequence, tuple)):
        values = list(value)
        if not values:
            row[keyword] = None
            return
        if len(values) > 1:
            row[f"Multi{keyword}"] = 1
        for i, v in enumerate(values):
            row[keyword if i == 0 else f"{keyword}{i}"] = scalar(v)
    else:
        row[keyword] = scalar(value)


def flatten(ds: Dataset) -> dict[str, Any]:
    """One row of plain values for every keyword element of ``ds`` but Pixel Data."""
    row: dict[str, Any] = {}
    latin1 = _latin1(ds)
    for tag in sorted(ds.keys()):
        if tag == PIXEL_DATA_TAG or tag.is_private:
            continue
        found = _read(ds, tag, latin1)
        if found is not None:
            _add(row, *found)
    return row


def flatten_elements(elements: Iterable[tuple[int, str | None, bytes]]) -> dict[str, Any] | None:
    """``flatten``'s row from a little-endian data set's undecoded (tag, file VR, value) elements.

    Elements must come in ascending tag order, without Pixel Data. Returns None when any element
    needs pydicom (another character set, a value the fast decoder does not parse, an explicit UN
    whose VR pydicom would look up): the caller then reads the file with pydicom, so the row is
    always exactly ``flatten``'s.
    """
    items = list(elements)
    latin1 = _latin1_elements(items)
    row: dict[str, Any] = {}
    for tag, file_vr, data in items:
        if (tag >> 16) & 1:
            continue
        if file_vr == "UN":
            return None
        found = _decoded(tag, file_vr, data, latin1)
        if found is _SLOW:
            return None
        if found is not None:
            _add(row, *found)
    return row


def _latin1_elements(items: list[tuple[int, str | None, bytes]]) -> bool:
    """``_latin1`` on undecoded elements: an absent, empty or single Latin-1 Specific Character Set."""
    for tag, _, data in items:
        if tag == CHARSET_TAG:
            value = _fast_value(data, "CS")
            return value is None or isinstance(value, str) and value.strip() in _LATIN1_CHARSETS
    return True

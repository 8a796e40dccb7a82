"""Where a conversion's DICOMs come from: one ``Source`` interface over every kind of input.

``open_source(src)`` recognises a URL of a zip (read by HTTP range requests), ``kaggle://``
a competition's download, ``-`` a zip on standard input, a folder (searched recursively), a
``.zip`` archive (read in place), a single file, or a text/CSV list of paths; ``discover``
lists its inputs; ``read_ids`` reads an ``--ids`` selection.

    base        Input, Source, ReadError: what every source is and gives
    files       DICOM files on this machine: a folder, a list of paths, one file
    zipformat   the zip format: end records, central directory, local headers, member data
    zipped      a zip read by offset from one directory listing, from a file or a URL
    remote      HTTP: range requests, retries, redirects, headers bound to their host
    streamed    a zip read once, front to back (standard input, a server that ignores Range)
    kaggle      kaggle://COMPETITION: Kaggle's download URL and the user's credentials
    inflate     ISA-L's inflate and CRC-32 where installed, zlib's otherwise
    fetch       one named file (the labels CSV) out of a zip source
    ids         --ids files
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path

from ichprep.convert.sources import kaggle
from ichprep.convert.sources.base import (
    MAX_FILE_BYTES,
    Input,
    ReadError,
    Source,
    id_of,
    is_safe_id,
)
from ichprep.convert.sources.files import Files, has_preamble
from ichprep.convert.sources.ids import read_ids
from ichprep.convert.sources.remote import (
    HEADERS_VARIABLE,
    Http,
    NetworkError,
    request_headers,
    shown,
    without_userinfo,
)
from ichprep.convert.sources.streamed import Counted, ZipStream
from ichprep.convert.sources.zipped import LocalFile, ZipArchive
from ichprep.errors import SourceError

HEADER_HINT = f"; check --header and {HEADERS_VARIABLE}"


def open_source(src: str | Path, headers: Sequence[str] = ()) -> Source:
    """The source ``src`` names: a URL, ``kaggle://COMPETITION``, ``-``, a folder, a zip archive, a DICOM file, or a list of paths.

    ``headers`` (``Name: value``) go with a URL's requests, and so do the lines of ``ICHPREP_HEADERS``.
    """
    text = str(src)
    if text == "-":
        return ZipStream("stdin", Counted(sys.stdin.buffer))
    if text.lower().startswith(("http://", "https://")):
        url, auth = without_userinfo(text)
        return _open_url(Http(url, {**request_headers(headers), **auth}, label=shown(text)), HEADER_HINT)
    if text.lower().startswith(kaggle.SCHEME):
        url, auth = kaggle.locate(text)
        return _open_url(Http(url, {**request_headers(headers), **auth}, label=text), kaggle.HINT)
    src = Path(src)
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    if src.is_dir():
        return Files(src, "folder")
    if zipfile.is_zipfile(src):
        return ZipArchive(LocalFile(src))
    if src.suffix.lower() == ".dcm" or has_preamble(str(src)):
        return Files(src, "file")
    return Files(src, "list")


def _open_url(http: Http, hint: str) -> Source:
    """A zip read by ranges, or, from a server that ignores ``Range``, one streamed pass over its body."""
    try:
        whole = http.probe()
    except NetworkError as err:
        raise SourceError(f"{http.name}: {err.reason}{hint if err.status in (401, 403) else ''}") from None
    return ZipArchive(http) if whole is None else ZipStream(http.name, whole)


def fetch_member(src: str | Path, name: str, out: Path, headers: Sequence[str] = ()) -> Path:
    """Write the member ``name`` of the zip source ``src`` (a file, URL or ``kaggle://``) to ``out``."""
    from ichprep.convert.sources.fetch import fetch

    source = open_source(src, headers)
    if not isinstance(source, ZipArchive):
        raise SourceError(f"{source.name}: fetch reads one member of a zip file, a zip URL or kaggle://; "
                          "a folder, a list, standard input or a server that ignores Range cannot be searched for one")
    return fetch(source, name, out)


def discover(src: str | Path, ids: Collection[str] | None = None) -> list[Input]:
    """The inputs of ``src``, restricted to ``ids`` when given."""
    return list(open_source(src).inputs(ids))


__all__ = ["MAX_FILE_BYTES", "Files", "Input", "ReadError", "Source", "ZipArchive", "ZipStream", "discover", "fetch_member", "id_of",
           "is_safe_id", "open_source", "read_ids", "shown"]

"""One named file out of a zip source: the labels CSV or the sample submission beside the DICOMs.

The competition's download holds ``stage_2_train.csv`` and ``stage_2_sample_submission.csv``
next to the images; a notebook that converts straight from the download needs them too, and
must not download 180 GB to get them. The member is read by its own byte range, inflated as it
arrives, its CRC-32 checked, and written under a temporary name that is renamed when complete.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ichprep import atomic
from ichprep.convert.sources.base import ReadError
from ichprep.convert.sources.inflate import crc32, error, inflater
from ichprep.convert.sources.zipformat import (
    DEFLATED,
    ENCRYPTED,
    LOCAL_HEADER,
    STORED,
    Member,
    local_skip,
)
from ichprep.convert.sources.zipped import CHUNK, ZipArchive, _exactly, _skip
from ichprep.errors import SourceError


def find(archive: ZipArchive, name: str) -> Member:
    """The member called ``name``: its full path in the archive, or a file name only one member has."""
    listed = archive.members()
    exact = [m for m in listed if m.name == name]
    if exact:
        return exact[0]
    by_name = [m for m in listed if PurePosixPath(m.name).name == name]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise SourceError(f"{archive.name}: {len(by_name)} members are called {name}; give the path, e.g. {by_name[0].name}")
    csvs = [m.name for m in listed if m.name.lower().endswith(".csv")][:5]
    raise SourceError(f"{archive.name}: no member {name}" + (f" (its CSV files: {', '.join(csvs)})" if csvs else ""))


def fetch(archive: ZipArchive, name: str, out: Path) -> Path:
    """Write the member ``name`` of ``archive`` to ``out``; returns ``out``."""
    member = find(archive, name)
    if member.flags & ENCRYPTED or member.method not in (STORED, DEFLATED):
        raise SourceError(f"{archive.name}: {member.name} is encrypted or compressed in a way ichprep does not read")
    body = archive.reader.open_range(member.offset, member.end)
    try:
        with atomic.replacing(out) as tmp, open(tmp, "wb") as sink:
            _skip(body, local_skip(_exactly(body, LOCAL_HEADER.size), member.name))
            _copy(body, member, sink)
    except (ReadError, OSError) as err:
        raise SourceError(f"{archive.name}: {member.name} could not be read ({err})") from None
    finally:
        body.close()
    return out


def _copy(body, member: Member, sink) -> None:
    """The member's data, inflated as it arrives, into ``sink``; its size and CRC-32 checked."""
    left, written, check = member.compressed, 0, 0
    inflate = inflater() if member.method == DEFLATED else None
    while left:
        piece = _exactly(body, min(left, CHUNK))
        left -= len(piece)
        try:
            data = inflate.decompress(piece) if inflate is not None else piece
        except error as err:
            raise ReadError(f"corrupt deflate data ({err})") from None
        sink.write(data)
        written += len(data)
        check = crc32(data, check)
    if written != member.size or check != member.crc:
        raise ReadError(f"Bad CRC-32 or size for file {member.name!r}")


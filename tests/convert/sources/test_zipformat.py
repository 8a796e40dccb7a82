"""Zip members read by offset and by stream: every layout a writer may choose, and every way a member can be bad.

Each archive is read two ways, as the competition's zip is: from its directory, member by
member in place (a file here, an HTTP range in the remote tests), and front to back as a
stream. Both must give exactly the bytes ``zipfile`` gives.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ziptools import LAYOUTS, build

from ichprep.convert.sources import MAX_FILE_BYTES, Input, ZipArchive, ZipStream, id_of
from ichprep.convert.sources.streamed import Counted
from ichprep.convert.sources.zipformat import Member
from ichprep.convert.sources.zipped import RUN_GAP, LocalFile, runs
from ichprep.errors import SourceError

MEMBERS = {
    "rsna/": b"",
    "rsna/stage_2_train/ID_1.dcm": bytes(range(256)) * 40,
    "rsna/stage_2_train/ID_2.dcm": b"\0" * 5000 + b"DICM" * 300,
    "rsna/stage_2_train.csv": b"ID,Label\n",
    "rsna/stage_2_test/ID_3.DCM": bytes(range(7, 250)) * 11,
    "../../ID_4.dcm": b"evil" * 100,
}
DICOMS = {name: data for name, data in MEMBERS.items() if name.lower().endswith(".dcm")}


def read_in_place(path: Path) -> dict[str, bytes | Exception]:
    """Every input's bytes (or error), listed in the parent and read by a worker's copy of the source."""
    archive = ZipArchive(LocalFile(path))
    return {item.member: data for item, data in archive.for_workers().read(archive.inputs())}


def read_streamed(data: bytes) -> dict[str, bytes | Exception]:
    stream = ZipStream("stdin", Counted(io.BytesIO(data)))
    return {item.member: data for item, data in stream.for_workers().read(list(stream.inputs()))}


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_zipfiles_bytes_in_place_and_streamed(tmp_path, layout, method):
    data = build(MEMBERS, layout, method)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    if layout != "prepended":
        with zipfile.ZipFile(path) as zf:
            assert {name: zf.read(name) for name in DICOMS} == DICOMS

    assert read_in_place(path) == DICOMS
    if layout == "descriptors" and method == zipfile.ZIP_STORED:
        with pytest.raises(SourceError, match="cannot be found in a stream"):
            read_streamed(data)
    elif layout == "prepended":
        with pytest.raises(SourceError, match="not a zip archive"):
            read_streamed(data)
    else:
        assert read_streamed(data) == DICOMS


def test_inputs_come_in_the_order_of_their_data_with_ids_from_stems_and_sources_naming_the_member(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(build(MEMBERS))
    inputs = ZipArchive(LocalFile(path)).inputs()
    assert [i.id for i in inputs] == ["ID_1", "ID_2", "ID_3", "ID_4"]
    assert [i.source for i in inputs] == [f"{path}!{name}" for name in DICOMS]
    offsets = [i.ref.offset for i in inputs]
    assert offsets == sorted(offsets) and all(i.ref.end > i.ref.offset for i in inputs)
    assert [i.id for i in ZipArchive(LocalFile(path)).inputs({"ID_3", "ID_9"})] == ["ID_3"]


def corrupt(data: bytes, name: str, at: int = 10) -> bytes:
    """``data`` with one byte of member ``name``'s stored data flipped."""
    start = data.index(name.encode()) + len(name)
    return data[: start + at] + bytes([data[start + at] ^ 0xFF]) + data[start + at + 1 :]


def test_a_bad_crc_fails_that_member_alone_in_place_and_streamed(tmp_path):
    name = "rsna/stage_2_train/ID_2.dcm"
    data = corrupt(build(MEMBERS, method=zipfile.ZIP_STORED), name)
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    for got in (read_in_place(path), read_streamed(data)):
        assert str(got.pop(name)) == f"Bad CRC-32 for file {name!r}"
        assert got == {k: v for k, v in DICOMS.items() if k != name}


def test_corrupt_deflate_data_is_a_failed_member_not_a_crash(tmp_path):
    name = "rsna/stage_2_train/ID_1.dcm"
    path = tmp_path / "a.zip"
    path.write_bytes(corrupt(build(MEMBERS), name, at=3))
    got = read_in_place(path)
    assert isinstance(got.pop(name), ValueError)
    assert got == {k: v for k, v in DICOMS.items() if k != name}


def test_encrypted_and_unknown_methods_are_failed_members(tmp_path):
    patched = patch_central(build(MEMBERS, method=zipfile.ZIP_STORED), "rsna/stage_2_train/ID_1.dcm", flags=1)
    patched = patch_central(patched, "rsna/stage_2_train/ID_2.dcm", method=12)
    path = tmp_path / "a.zip"
    path.write_bytes(patched)
    got = read_in_place(path)
    assert str(got["rsna/stage_2_train/ID_1.dcm"]) == "'rsna/stage_2_train/ID_1.dcm' is encrypted"
    assert "compression method 12" in str(got["rsna/stage_2_train/ID_2.dcm"])
    assert got["rsna/stage_2_test/ID_3.DCM"] == DICOMS["rsna/stage_2_test/ID_3.DCM"]


def test_a_member_claiming_more_than_a_slice_is_refused_unread(tmp_path):
    name = "rsna/stage_2_train/ID_2.dcm"
    path = tmp_path / "a.zip"
    path.write_bytes(patch_central(build(MEMBERS, method=zipfile.ZIP_STORED), name, size=MAX_FILE_BYTES + 1))
    archive = ZipArchive(LocalFile(path))
    wanted = [i for i in archive.inputs() if i.member == name]
    worker = archive.for_workers()
    [(_, error)] = worker.read(wanted)
    assert "larger than any CT slice" in str(error)
    assert worker.fetched == 0


def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path):
    members = {"ID_bomb.dcm": b"\0" * (64 * 2**20), "ID_ok.dcm": b"x" * 1000}
    path = tmp_path / "a.zip"
    path.write_bytes(patch_central(build(members), "ID_bomb.dcm", size=1000))
    got = read_in_place(path)
    assert "deflate data gives more bytes than the 1000 recorded" in str(got["ID_bomb.dcm"])
    assert got["ID_ok.dcm"] == members["ID_ok.dcm"]


@pytest.mark.parametrize("data, reason", [
    (b"", "not a readable zip archive"),
    (b"PK\x03\x04 and then nothing of a zip", "not a readable zip archive"),
    (build(MEMBERS)[:-30], "not a readable zip archive"),
])
def test_what_is_not_a_zip_is_one_source_error(tmp_path, data, reason):
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    with pytest.raises(SourceError, match=reason):
        ZipArchive(LocalFile(path)).inputs()


def test_a_directory_cut_short_is_a_source_error(tmp_path):
    data = build(MEMBERS)
    end = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<LL", data, end + 12)
    path = tmp_path / "a.zip"
    path.write_bytes(data[:end] + data[end : end + 12] + struct.pack("<LL", cd_size + 10, cd_offset - 10) + data[end + 20 :])
    with pytest.raises(SourceError, match="not a readable zip archive"):
        ZipArchive(LocalFile(path)).inputs()


def test_a_directory_that_does_not_match_the_data_fails_members_not_the_run(tmp_path):
    data = bytearray(build(MEMBERS, method=zipfile.ZIP_STORED))
    name = b"rsna/stage_2_train/ID_2.dcm"
    local = data.index(name) - 30
    data[local : local + 4] = b"XXXX"
    path = tmp_path / "a.zip"
    path.write_bytes(bytes(data))
    got = read_in_place(path)
    assert "no local header" in str(got.pop(name.decode()))
    assert got == {k: v for k, v in DICOMS.items() if k != name.decode()}


def test_neighbouring_members_make_one_run_and_gaps_or_oversize_members_split_runs():
    def item(offset: int, end: int, size: int = 100) -> Input:
        return Input(f"ID_{offset}", "a.zip", Member.of(f"ID_{offset}.dcm", offset, end, size, size, 0, 0, 0), f"ID_{offset}.dcm")

    items = [item(0, 100), item(100, 200), item(200 + RUN_GAP, 300 + RUN_GAP), item(300 + RUN_GAP, 400 + RUN_GAP),
             item(10**6, 2 * 10**6, MAX_FILE_BYTES + 1), item(2 * 10**6, 2 * 10**6 + 100)]
    assert [[i.ref.offset for i in run] for run in runs(items)] == [
        [0, 100, 200 + RUN_GAP, 300 + RUN_GAP], [10**6], [2 * 10**6]]
    assert len(list(runs([item(0, 100), item(101 + RUN_GAP, 200 + RUN_GAP)]))) == 2, "a gap past RUN_GAP is not read through"
    assert len(list(runs([items[1], items[0]]))) == 2, "members out of order are not one range"


def test_a_worker_reads_only_its_members_records_never_the_directory(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(build(MEMBERS, method=zipfile.ZIP_STORED))
    archive = ZipArchive(LocalFile(path))
    inputs = archive.inputs()
    worker = archive.for_workers()
    list(worker.read(inputs[1:2]))
    member = inputs[1].member
    assert worker.fetched == 30 + len(member) + len(DICOMS[member])


@given(st.tuples(st.text(alphabet="ab./\\", max_size=12), st.sampled_from(["", ".dcm", ".DCM", "/"])).map("".join))
def test_id_of_is_the_stem_pathlib_gives(name):
    base = PurePosixPath(name.replace("\\", "/")).name
    assert id_of(name) == (base[:-4] if base.lower().endswith(".dcm") else base)


def patch_central(data: bytes, name: str, flags: int | None = None, method: int | None = None, size: int | None = None) -> bytes:
    """``data`` with member ``name``'s central directory record changed."""
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name.encode():
        at = data.index(b"PK\x01\x02", at + 1)
    record = bytearray(data[at : at + 46])
    for value, offset, form in ((flags, 8, "<H"), (method, 10, "<H"), (size, 24, "<L")):
        if value is not None:
            struct.pack_into(form, record, offset, value)
    return data[:at] + bytes(record) + data[at + 46 :]

"""Finding inputs: folders, list files, zip archives, id restrictions, and which ids are safe file names."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ichprep.convert import sources
from ichprep.convert.sources import Input
from ichprep.convert.sources.files import from_folder, read_file
from ichprep.errors import SourceError

PIXELS = np.full((8, 8), 1000, dtype=np.uint16)


def ids_of(inputs: list[Input]) -> list[str]:
    return [i.id for i in inputs]


@pytest.fixture
def tree(tmp_path: Path, make_ct) -> Path:
    """A folder with DICOMs in every spelling, nested folders, a preamble-only DICOM, non-DICOM noise and hidden files."""
    root = tmp_path / "src"
    dicom = make_ct(PIXELS)
    for rel in ["ID_a.dcm", "ID_b.DCM", "deep/er/ID_c.Dcm", "deep/ID_d.dcm", "ID_noext"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(dicom)
    (root / "notes.txt").write_text("not an image")
    (root / "deep" / "README").write_bytes(b"\0" * 200)
    (root / ".hidden_with_preamble").write_bytes(dicom)
    (root / "._ID_a.dcm").write_bytes(b"\0\5\26\7 macOS resource fork")
    (root / ".cache" / "ID_e.dcm").parent.mkdir()
    (root / ".cache" / "ID_e.dcm").write_bytes(dicom)
    (root / "no_preamble").write_bytes(make_ct(PIXELS, preamble=False))
    return root


def test_folder_walk_finds_dcm_in_any_case_and_preamble_files_recursively_but_no_hidden_or_other_files(tree):
    inputs = from_folder(tree)
    assert sorted(ids_of(inputs)) == ["ID_a", "ID_b", "ID_c", "ID_d", "ID_noext"]
    for item in inputs:
        assert Path(item.ref).is_file() and item.source == item.ref


def test_folder_walk_order_does_not_depend_on_creation_order(tmp_path, make_ct):
    data = make_ct(PIXELS)
    for name in ["c.dcm", "a.dcm", "b.dcm", "sub/z.dcm", "sub/y.dcm"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert ids_of(from_folder(tmp_path)) == ["a", "b", "c", "y", "z"]


def test_symlink_loop_does_not_hang_the_walk(tree):
    os.symlink(tree, tree / "deep" / "loop")
    os.symlink(tree / "deep", tree / "deep" / "er" / "back")
    assert sorted(ids_of(sources.discover(tree))) == ["ID_a", "ID_b", "ID_c", "ID_d", "ID_noext"]


def test_list_file_paths_are_relative_to_the_list(tree, tmp_path):
    listing = tree / "deep" / "list.txt"
    listing.write_text(f"# a comment\n\n../ID_a.dcm\ner/ID_c.Dcm\n  {tree / 'ID_b.DCM'}  \n")
    inputs = sources.discover(listing)
    assert ids_of(inputs) == ["ID_a", "ID_c", "ID_b"]
    assert all(Path(i.ref).is_file() for i in inputs)
    assert Path(inputs[0].ref).resolve() == (tree / "ID_a.dcm").resolve()


@pytest.mark.parametrize("column", ["path", "source", "fname", "file", "filename"])
def test_csv_list_takes_the_path_column(tree, column):
    listing = tree / "list.csv"
    pd.DataFrame({"label": [1, 0], column: ["ID_a.dcm", "deep/ID_d.dcm"]}).to_csv(listing, index=False)
    inputs = sources.discover(listing)
    assert ids_of(inputs) == ["ID_a", "ID_d"]
    assert all(Path(i.ref).is_file() for i in inputs)


def test_csv_list_without_a_path_column_is_a_source_error(tree):
    listing = tree / "list.csv"
    pd.DataFrame({"label": [1]}).to_csv(listing, index=False)
    with pytest.raises(SourceError, match="path"):
        sources.discover(listing)


@pytest.fixture
def archive(tmp_path: Path, make_ct) -> tuple[Path, dict[str, bytes]]:
    """A zip like the competition's: a folder of .dcm members, plus a directory entry and a CSV."""
    members = {
        "rsna/stage_2_train/ID_1.dcm": make_ct(PIXELS, sop="1.2.3.1"),
        "rsna/stage_2_train/ID_2.dcm": make_ct(PIXELS + 7, sop="1.2.3.2"),
        "rsna/stage_2_test/ID_3.DCM": make_ct(PIXELS + 9, sop="1.2.3.3"),
    }
    path = tmp_path / "rsna.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rsna/", "")
        zf.writestr("rsna/stage_2_train.csv", "ID,Label\n")
        for name, data in members.items():
            zf.writestr(name, data)
    return path, members


def test_zip_members_are_inputs_in_the_order_of_their_data_read_in_place(archive):
    path, members = archive
    inputs = sources.open_source(path).inputs()
    assert ids_of(inputs) == ["ID_1", "ID_2", "ID_3"]
    worker = sources.open_source(path).for_workers()
    for (item, data), name in zip(worker.read(inputs), members):
        assert item.source == f"{path}!{name}"
        assert data == members[name]
    with zipfile.ZipFile(path) as zf:
        records = sum(30 + len(info.filename) + info.compress_size for info in zf.infolist() if info.filename in members)
    assert worker.fetched == records, "a worker reads each member's local record once, and nothing else"
    assert not any(p.suffix == ".dcm" for p in path.parent.rglob("*"))


def test_zip_member_path_never_leaks_into_the_id(tmp_path, make_ct):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../x.dcm", make_ct(PIXELS))
        zf.writestr("a\\b\\y.dcm", make_ct(PIXELS))
    assert sorted(ids_of(sources.discover(path))) == ["x", "y"]


def test_ids_restrict_the_inputs(tree, archive):
    assert ids_of(sources.discover(tree, ["ID_d", "ID_a", "ID_zzz"])) == ["ID_a", "ID_d"]
    assert ids_of(sources.discover(archive[0], {"ID_2"})) == ["ID_2"]
    assert sources.discover(tree, []) == []


def test_single_dicom_file_is_one_input(tree):
    assert ids_of(sources.discover(tree / "ID_b.DCM")) == ["ID_b"]
    assert ids_of(sources.discover(tree / "ID_noext")) == ["ID_noext"]


def test_missing_source_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such"):
        sources.discover(tmp_path / "nope")


def test_read_ids_from_text_csv_and_parquet(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("ID_b\n\nID_a\n  ID_c  \nID_a\n")
    assert sources.read_ids(text) == ["ID_a", "ID_b", "ID_c"]
    csv = tmp_path / "ids.csv"
    pd.DataFrame({"SOPInstanceUID": ["ID_x", "ID_y"], "any": [1, 0]}).to_csv(csv, index=False)
    assert sources.read_ids(csv) == ["ID_x", "ID_y"]
    parquet = tmp_path / "train.parquet"
    pd.DataFrame({"SOPInstanceUID": ["ID_p", "ID_q", None], "fold": ["train", "valid", "train"]}).to_parquet(parquet)
    assert sources.read_ids(parquet) == ["ID_p", "ID_q"]


def test_read_ids_from_the_competition_label_csv(tmp_path):
    csv = tmp_path / "stage_2_train.csv"
    pd.DataFrame({"ID": ["ID_12ab_epidural", "ID_12ab_any", "ID_34cd_subdural"], "Label": [0, 1, 0]}).to_csv(csv, index=False)
    assert sources.read_ids(csv) == ["ID_12ab", "ID_34cd"]


def test_read_ids_without_an_id_column_is_a_source_error(tmp_path):
    csv = tmp_path / "ids.csv"
    pd.DataFrame({"label": [1]}).to_csv(csv, index=False)
    with pytest.raises(SourceError):
        sources.read_ids(csv)
    with pytest.raises(SourceError):
        sources.read_ids(tmp_path / "absent.txt")


@pytest.mark.parametrize(
    "name, image_id",
    [
        ("ID_000012eaf.dcm", "ID_000012eaf"),
        ("a/b/ID_1.DCM", "ID_1"),
        ("../../x.dcm", "x"),
        ("C:\\data\\ID_2.dcm", "ID_2"),
        ("ID_noext", "ID_noext"),
        ("..dcm", "."),
        ("...dcm", ".."),
        (".dcm", ""),
    ],
)
def test_id_is_the_file_stem(name, image_id):
    assert sources.id_of(name) == image_id


@pytest.mark.parametrize("image_id", ["x", "ID_000012eaf", "1.2.840.113619.2", "a-b_c.d", "A" * 200])
def test_plain_names_are_safe_ids(image_id):
    assert sources.is_safe_id(image_id)


@pytest.mark.parametrize(
    "image_id", ["", ".", "..", "...", ".hidden", "-", "-rf", "_x", "a/b", "a\\b", "a..b", "a b", "é", "A" * 201, "x\n"]
)
def test_names_that_could_escape_or_hide_are_unsafe_ids(image_id):
    assert not sources.is_safe_id(image_id)


def test_read_file_refuses_a_file_over_the_limit(tmp_path):
    path = tmp_path / "big.dcm"
    path.write_bytes(b"\0" * 2048)
    assert read_file(str(path)) == b"\0" * 2048
    with pytest.raises(ValueError, match="larger"):
        read_file(str(path), limit=1024)


def test_a_source_reads_each_item_or_says_why_not_and_counts_the_bytes(tmp_path):
    good, missing = tmp_path / "good.dcm", tmp_path / "missing.dcm"
    good.write_bytes(b"x" * 100)
    source = sources.open_source(tmp_path)
    items = [Input("good", str(good), str(good)), Input("missing", str(missing), str(missing))]
    (first, data), (second, error) = source.read(items)
    assert (first, data) == (items[0], b"x" * 100)
    assert second == items[1] and isinstance(error, FileNotFoundError)
    assert source.fetched == 100

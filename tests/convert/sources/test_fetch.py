"""`ichprep fetch`: one named file out of a zip source, reading only its own bytes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_run import ichprep
from zipserver import ZipServer

from ichprep.convert.sources.zipformat import PROBE

LABELS = ("ID,Label\n" + "".join(f"ID_{i:09x}_any,{i % 2}\n" for i in range(20000))).encode()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """The download's shape: DICOM-sized members around the labels CSV and a sample submission."""
    path = tmp_path / "rsna.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(48):
            zf.writestr(f"rsna/stage_2_train/ID_{k:09x}.dcm", np.random.default_rng(k).bytes(512 * 1024), zipfile.ZIP_STORED)
        zf.writestr("rsna/stage_2_train.csv", LABELS)
        zf.writestr("rsna/stage_2_sample_submission.csv", b"ID,Label\n")
        zf.writestr("other/stage_2_sample_submission.csv", b"ID,Label\n")
    return path


def test_a_member_is_fetched_by_its_file_name_byte_for_byte(archive: Path, tmp_path: Path) -> None:
    result = ichprep("fetch", archive, "stage_2_train.csv", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "labels.csv").read_bytes() == LABELS
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_from_a_url_only_the_directory_and_the_members_own_bytes_are_downloaded(archive: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        stored = zf.getinfo("rsna/stage_2_train.csv").compress_size
    with ZipServer(archive) as server:
        result = ichprep("fetch", server.url(), "rsna/stage_2_train.csv", "--out", tmp_path / "labels.csv")
        served = server.served
    assert result.exit_code == 0, result.output
    assert (tmp_path / "labels.csv").read_bytes() == LABELS
    assert served < stored + 2 * PROBE < archive.stat().st_size / 20, f"{served} bytes served for a {stored}-byte member"


def test_a_damaged_member_is_refused_and_nothing_is_written(archive: Path, tmp_path: Path) -> None:
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("rsna/stage_2_train.csv")
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
    data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    result = ichprep("fetch", archive, "stage_2_train.csv", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 2 and result.stderr.startswith("ichprep: error: ") and len(result.stderr.splitlines()) == 1
    assert "stage_2_train.csv could not be read" in result.stderr
    assert not (tmp_path / "labels.csv").exists() and not list(tmp_path.glob(".labels.csv*"))


@pytest.mark.parametrize("name, reason", [
    ("nothing.csv", "no member nothing.csv (its CSV files: rsna/stage_2_train.csv"),
    ("stage_2_sample_submission.csv", "2 members are called stage_2_sample_submission.csv; give the path"),
])
def test_a_name_that_is_missing_or_ambiguous_is_one_line(archive: Path, tmp_path: Path, name: str, reason: str) -> None:
    result = ichprep("fetch", archive, name, "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and reason in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()


def test_only_zip_sources_can_be_searched(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    result = ichprep("fetch", tmp_path / "images", "stage_2_train.csv", "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and "fetch reads one member of a zip" in result.stderr

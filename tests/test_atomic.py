"""Atomic writes: the target holds the old bytes or the whole new ones, and no temporary survives."""

from __future__ import annotations

from pathlib import Path

import pytest

from ichprep import atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"old")
    atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_failed_write_removes_its_temporary(tmp_path):
    target = tmp_path / "x.png"
    target.mkdir()
    (target / "keep").write_text("a folder where the image should go")
    with pytest.raises(OSError):
        atomic.write_bytes(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
    assert Path(target / "keep").exists()


def test_replacing_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "manifest.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.parquet"]


def test_temporaries_are_what_a_resumed_run_sweeps(tmp_path):
    name = atomic.temporary(tmp_path / "ID_1.png")
    name.write_bytes(b"x")
    assert list(tmp_path.glob(atomic.STALE)) == [name]

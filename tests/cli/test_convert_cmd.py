"""`ichprep convert --dry-run` estimates and creates nothing: no folder, no lock, in a new output folder or an existing one."""

from __future__ import annotations

import pytest
from cli_run import ichprep

from ichprep.synth import IMAGES_DIR, generate


@pytest.fixture(scope="module")
def dicoms(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("dry") / "raw", n=6, seed=0, size=32) / IMAGES_DIR


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_dry_run_into_a_new_folder_leaves_no_folder(dicoms, tmp_path):
    out = tmp_path / "new" / "out"
    done = ichprep("convert", dicoms, out, "--size", "32", "--dry-run", "--jobs", "1", "-q")
    assert done.exit_code == 0, done.output
    assert "estimated output" in done.stdout
    assert not out.exists() and not (tmp_path / "new").exists()


def test_a_dry_run_into_a_converted_folder_changes_nothing_in_it(dicoms, tmp_path):
    out = tmp_path / "out"
    assert ichprep("convert", dicoms, out, "--size", "32", "--jobs", "1", "-q").exit_code == 0
    before = listing(out)
    done = ichprep("convert", dicoms, out, "--size", "32", "--dry-run", "--jobs", "1", "-q")
    assert done.exit_code == 0, done.output
    assert listing(out) == before


def test_a_dry_run_into_an_empty_folder_leaves_it_empty(dicoms, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = ichprep("convert", dicoms, out, "--size", "32", "--dry-run", "--jobs", "1", "-q")
    assert done.exit_code == 0, done.output
    assert listing(out) == []

"""Disk budgets: the estimate from a converted sample, the clean stop during a run."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_run import ichprep

from ichprep.convert import Options, convert
from ichprep.convert.run import budget
from ichprep.errors import DiskFullError
from ichprep.settings import Settings
from ichprep.synth import generate


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), n=24, seed=5, size=128) / "stage_1_train_images"


@pytest.mark.parametrize(("text", "size"), [("20GB", 20 * 10**9), ("500MiB", 500 * 2**20), ("1.5T", 1_500_000_000_000), ("4096", 4096)])
def test_parse_size_reads_decimal_and_binary_units(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "12 parsecs", "-5GB"])
def test_parse_size_rejects_what_is_not_a_size(text):
    with pytest.raises(ValueError):
        budget.parse_size(text)


def test_low_free_space_stops_the_run_keeping_a_resumable_manifest(images, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls = iter(range(10**6))
    monkeypatch.setattr(budget, "free_bytes", lambda path: 10**12 if next(calls) == 0 else budget.MARGIN - 1)
    with pytest.raises(DiskFullError):
        convert(images, out, Settings(size=64), Options(jobs=1, quiet=True))
    partial = pd.read_parquet(out / "manifest.parquet")
    assert 0 < len(partial) < 24 and set(partial["status"]) == {"ok"}
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(partial["id"])
    monkeypatch.undo()
    rest = convert(images, out, Settings(size=64), Options(jobs=1, quiet=True))
    assert rest.skipped == len(partial) and rest.converted == 24 - len(partial)
    assert len(pd.read_parquet(out / "manifest.parquet")) == 24


def test_the_cli_dry_run_prints_the_estimate_and_exits_0(images, tmp_path):
    res = ichprep("convert", str(images), str(tmp_path / "out"), "--size", "64", "--dry-run", "--jobs", "1", "-q")
    assert res.exit_code == 0, res.output
    assert "estimated output" in res.stdout and "for 24 images" in res.stdout and "free space" in res.stdout
    assert not list((tmp_path / "out").glob("*.png")) and not (tmp_path / "out" / "manifest.parquet").exists()

"""A zip on standard input through the whole pipeline: what a stream allows, and a stream cut short.

Standard input is replaced in-process by the zip's bytes; ``test_remote_runs`` runs the real
``ichprep convert -`` with a pipe.
"""

from __future__ import annotations

import io
import sys

import h5py
import hdf5plugin  # noqa: F401  (registers the blosc filter for reading shards)
import pandas as pd
import pytest
from cli_run import ichprep
from ziptools import build

from ichprep.synth import generate


@pytest.fixture(scope="module")
def zipped(tmp_path_factory) -> bytes:
    folder = generate(tmp_path_factory.mktemp("synth"), n=24, seed=5, size=64) / "stage_1_train_images"
    return build({f"stage_1_train_images/{p.name}": p.read_bytes() for p in sorted(folder.glob("*.dcm"))}, "descriptors")


def stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


@pytest.mark.parametrize("args, words", [
    (["--dry-run"], "--dry-run and --max-disk estimate from a sample of all the inputs: stdin is a stream"),
    (["--max-disk", "1GB"], "--dry-run and --max-disk estimate from a sample of all the inputs: stdin is a stream"),
    (["--windows", "fastai"], "--windows fastai takes its breakpoints from slices spread over all the inputs"),
    (["--format", "hdf5"], "--shard-size 10000: a shard's members are held in memory when stdin is a stream"),
])
def test_what_needs_the_inputs_before_the_run_is_refused_for_a_stream(zipped, tmp_path, monkeypatch, args, words):
    stdin(monkeypatch, zipped)
    run = ichprep("convert", "-", tmp_path / "out", "--quiet", *args)
    assert run.exit_code == 2 and words in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_stream_fills_shards_of_up_to_256_images(zipped, tmp_path, monkeypatch):
    stdin(monkeypatch, zipped)
    run = ichprep("convert", "-", tmp_path / "out", "--quiet", "--format", "hdf5", "--shard-size", "10", "--jobs", "1")
    assert run.exit_code == 0, run.output
    shards = sorted((tmp_path / "out").glob("shard-*.h5"))
    with h5py.File(shards[0]) as first:
        assert first["images"].shape[0] == 10
    assert len(shards) == 3 and len(pd.read_parquet(tmp_path / "out" / "index.parquet")) == 24


def test_a_stream_cut_short_keeps_what_it_converted_and_says_to_rerun(zipped, tmp_path, monkeypatch):
    stdin(monkeypatch, zipped[: len(zipped) // 2])
    cut = ichprep("convert", "-", tmp_path / "out", "--quiet", "--jobs", "1")
    assert cut.exit_code == 1
    assert cut.stderr.startswith("ichprep: stopped: stdin: the stream ends") and "re-run the same command to resume" in cut.stderr
    kept = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert 0 < len(kept) < 24 and (kept["status"] == "ok").all()
    stdin(monkeypatch, zipped)
    rerun = ichprep("convert", "-", tmp_path / "out", "--quiet", "--jobs", "1")
    assert rerun.exit_code == 0, rerun.output
    assert f"{24 - len(kept)} converted, 0 failed, {len(kept)} already done" in rerun.stdout


@pytest.mark.parametrize("data, words", [(b"", "stdin: not a zip archive (empty)"),
                                         (b"<html>a login page</html>", "stdin: not a zip archive (no local header at byte 0)")])
def test_what_is_not_a_zip_stream_is_one_line(tmp_path, monkeypatch, data, words):
    stdin(monkeypatch, data)
    run = ichprep("convert", "-", tmp_path / "out", "--quiet", "--jobs", "1")
    assert run.exit_code == 2 and run.stderr.strip() == f"ichprep: error: {words}"
    assert not (tmp_path / "out").exists()

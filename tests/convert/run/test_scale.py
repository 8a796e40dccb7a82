"""The competition's scale: a 750,000-row output folder resumes and re-runs within a notebook's memory.

Built in seconds by ``tests/scale.py`` (no DICOM is converted): half the manifest is still in
parts, as a run killed before its end leaves it. The first re-run folds the parts; the second
finds nothing to do. Each runs as its own process, whose peak memory is read from the kernel.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from peak import PEAK
from scale import converted_folder

from ichprep import layout

ROWS = 750_000
PARENT_LIMIT_MB = 1024
NOTHING_TO_DO_SECONDS = 15


MEASURED = PEAK + """
import sys
from ichprep.cli import main
try:
    main()
finally:
    print("peak_kb", peak(), file=sys.stderr)
"""
"""The command line, reporting its own peak resident memory on its way out."""


def convert_process(listing: Path, out: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """``ichprep convert LISTING OUT --format hdf5`` as a process: its result, wall seconds and peak RSS in MB."""
    command = [sys.executable, "-c", MEASURED, "convert", str(listing), str(out), "--format", "hdf5", "-q"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.rsplit("peak_kb", 1)[1])
    return done, seconds, peak_kb / 1024


@pytest.mark.slow
def test_a_750000_row_resume_and_a_nothing_to_do_rerun_stay_small_and_quick(tmp_path: Path) -> None:
    out = tmp_path / "out"
    listing = converted_folder(out, ROWS, in_parts=ROWS // 2)

    resumed, _, resumed_mb = convert_process(listing, out)
    assert resumed.returncode == 0, resumed.stderr
    assert f"nothing to do: all {ROWS} inputs were already converted" in resumed.stdout
    manifest = pd.read_parquet(out / layout.MANIFEST, columns=["source", "status", "row"])
    assert len(manifest) == ROWS and manifest["source"].is_unique and (manifest["status"] == "ok").all()
    assert str(manifest["row"].dtype) == "Int64"
    assert not list((out / layout.STATE_DIR / layout.PARTS).iterdir())
    index = pd.read_parquet(out / layout.INDEX)
    assert len(index) == ROWS and list(index.columns) == ["id", "shard", "row"]
    assert resumed_mb < PARENT_LIMIT_MB, f"folding the parts peaked at {resumed_mb:.0f} MB"

    again, seconds, again_mb = convert_process(listing, out)
    assert again.returncode == 0, again.stderr
    assert f"nothing to do: all {ROWS} inputs were already converted" in again.stdout
    assert seconds < NOTHING_TO_DO_SECONDS, f"a re-run with nothing to do took {seconds:.1f} s"
    assert again_mb < PARENT_LIMIT_MB, f"a re-run with nothing to do peaked at {again_mb:.0f} MB"

"""The scripts in examples/ run as shown in their docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("example")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "notebook_pipeline.py"), str(work), "--n", "60"], capture_output=True, text=True, timeout=300
    )
    return work, done


def test_the_notebook_pipeline_reaches_a_normalised_batch(pipeline):
    work, done = pipeline
    assert done.returncode == 0, done.stderr[-2000:]
    assert "converted 60, failed 0" in done.stdout
    assert "batch (16, 3, 128, 128) torch.float32" in done.stdout


def test_read_shards_finds_an_image_by_id_with_plain_h5py(pipeline):
    work, _ = pipeline
    first = pd.read_parquet(work / "shards" / "index.parquet").iloc[7]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_shards.py"), str(work / "shards"), first["id"]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{first['id']}: (128, 128, 3) uint8" in done.stdout
    with h5py.File(work / "shards" / first["shard"], "r") as f:
        stored = np.asarray(f["labels"][first["row"]]).tolist()
    assert f"labels {np.array(stored)}" in done.stdout


def test_read_shards_without_an_id_shows_the_first_image(pipeline):
    work, _ = pipeline
    first = pd.read_parquet(work / "shards" / "index.parquet")["id"].iloc[0]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_shards.py"), str(work / "shards")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"{first}: (128, 128, 3) uint8")


@pytest.mark.parametrize("folder, words", [("shards", "ID_000000000 is not in"), ("meta", "has no index.parquet")])
def test_read_shards_explains_a_wrong_id_or_folder_in_one_line(pipeline, folder, words):
    work, _ = pipeline
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "read_shards.py"), str(work / folder), "ID_000000000"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("read_shards.py: error: ") and words in done.stderr, done.stderr

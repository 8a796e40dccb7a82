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
    done = subprocess.run([sys.executable, str(EXAMPLES / "notebook_pipeline.py"), str(work), "--n", "60"], capture_output=True, text=True, timeout=300)
    return work, done


def test_the_notebook_pipeline_reaches_a_normalised_batch(pipeline):
    work, done = pipeline
    assert done.returncode == 0, done.stderr[-2000:]
    assert "converted 60, failed 0" in done.stdout
    assert "batch (16, 3, 128, 128) torch.float32" in done.stdout


def test_read_shards_finds_an_image_by_id_with_plain_h5py(pipeline):
    work, _ = pipeline
    first = pd.read_parquet(work / "shards" / "index.parquet").iloc[7]
    done = subprocess.run([sys.executable, str(EXAMPLES / "read_shards.py"), str(work / "shards"), first["id"]], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{first['id']}: (128, 128, 3) uint8" in done.stdout
    with h5py.File(work / "shards" / first["shard"], "r") as f:
        stored = np.asarray(f["labels"][first["row"]]).tolist()
    assert f"labels {np.array(stored)}" in done.stdout

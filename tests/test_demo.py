"""`ichprep demo`, the README's main job: phantoms -> images -> cleaned tables -> contact sheet."""

from __future__ import annotations

import cv2
import pandas as pd
from cli_run import ichprep


def test_demo_runs_every_data_stage_and_says_what_to_run_next(tmp_path):
    out = tmp_path / "demo-out"
    result = ichprep("demo", str(out), "--n", "40", "--jobs", "1", "--quiet")

    assert result.exit_code == 0, result.output
    dicoms = sorted((out / "raw" / "stage_1_train_images").glob("*.dcm"))
    assert len(dicoms) == 40
    manifest = pd.read_parquet(out / "images" / "manifest.parquet")
    assert (manifest["status"] == "ok").sum() == 40
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(p.stem for p in dicoms)
    train = pd.read_parquet(out / "meta" / "train.parquet")
    assert set(train["SOPInstanceUID"]) <= set(manifest["id"]) and len(train) > 0
    sheet = cv2.imread(str(out / "sheet.png"))
    assert sheet is not None and sheet.shape[0] > 256
    assert f"next: ichprep train {out / 'images'}" in result.stdout

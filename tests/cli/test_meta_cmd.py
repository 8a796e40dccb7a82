"""`ichprep clean-meta` and `ichprep sheet` through the CLI: outputs, summaries and exit codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
from cli_run import ichprep
from real_manifest import TRAIN_CSV, real_manifest

from ichprep import SUBTYPES


def converted(tmp_path):
    """A convert-like output folder: the real sample's manifest and one PNG per slice."""
    conv = tmp_path / "conv"
    conv.mkdir()
    frame = real_manifest()
    frame.to_parquet(conv / "manifest.parquet")
    for k, image_id in enumerate(frame["id"]):
        image = np.full((64, 64, 3), (k * 6) % 256, dtype=np.uint8)
        cv2.imwrite(str(conv / f"{image_id}.png"), image)
    return conv


def test_clean_meta_prints_the_summary_and_writes_outputs(tmp_path):
    conv = converted(tmp_path)
    out = tmp_path / "meta"
    result = ichprep("clean-meta", str(conv), "--labels", str(TRAIN_CSV), "--out", str(out),
                                 "--min-brain", "0.02", "--neg-ratio", "1", "--seed", "42", "--val-frac", "0.2")
    assert result.exit_code == 0, result.output
    assert "rows in: 40" in result.stdout
    assert "positives (before -> after): any 28 ->" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["options"] == {"min_brain": 0.02, "neg_ratio": 1.0, "seed": 42, "val_frac": 0.2, "sample": True}
    for name in ("meta.parquet", "train.parquet", "labels.parquet", "df_trn.fth", "comb.fth", "labels.fth", "report.png"):
        assert (out / name).is_file(), name


def test_no_sample_and_json_options(tmp_path):
    conv = converted(tmp_path)
    result = ichprep("clean-meta", str(conv / "manifest.parquet"), "-l", str(TRAIN_CSV),
                                 "-o", str(tmp_path / "m"), "--no-sample", "--min-brain", "0", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["rows_kept"] == 40 and report["dropped"]["sampled_out"] == 0


def test_broken_labels_exit_2_naming_the_image(tmp_path):
    conv = converted(tmp_path)
    bad = tmp_path / "bad.csv"
    rows = [f"ID_0000ca2f6_{s},0" for s in SUBTYPES if s != "subdural"]
    bad.write_text("ID,Label\n" + "\n".join(rows) + "\n")
    result = ichprep("clean-meta", str(conv), "--labels", str(bad), "--out", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert "image ID_0000ca2f6 has no row for subtype(s) subdural" in result.stderr


def test_usage_errors_exit_2(tmp_path):
    conv = converted(tmp_path)
    missing = ichprep("clean-meta", str(tmp_path / "nope"), "--out", str(tmp_path / "m"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    bad_frac = ichprep("clean-meta", str(conv), "--out", str(tmp_path / "m"), "--val-frac", "1.5")
    assert bad_frac.exit_code == 2 and "--val-frac" in bad_frac.stderr


def test_sheet_from_the_cleaned_table(tmp_path):
    conv = converted(tmp_path)
    out = tmp_path / "meta"
    assert ichprep("clean-meta", str(conv), "-l", str(TRAIN_CSV), "-o", str(out)).exit_code == 0
    sheet = tmp_path / "sheet.png"
    result = ichprep("sheet", str(conv), "--meta", str(out / "train.parquet"), "--out", str(sheet),
                                 "--per-subtype", "3")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(sheet)) is not None


def test_sheet_from_the_labels_csv_and_a_mismatch(tmp_path):
    conv = converted(tmp_path)
    result = ichprep("sheet", str(conv), "--meta", str(TRAIN_CSV), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 0, result.output
    other = tmp_path / "other.csv"
    other.write_text("ID,Label\n" + "\n".join(f"ID_zzz_{s},1" for s in SUBTYPES) + "\n")
    result = ichprep("sheet", str(conv), "--meta", str(other), "--out", str(tmp_path / "s.png"))
    assert result.exit_code == 2 and "none of the 1 labelled ids" in result.stderr

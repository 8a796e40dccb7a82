"""The metadata table and the clean-meta pipeline, on generated manifests and the real sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydicom
import pytest
from real_manifest import TRAIN_CSV, TRAIN_IMAGES, real_manifest, require_rsna

from ichprep import LABELS
from ichprep.convert.read.dicom import needs_fix
from ichprep.labels import read_labels
from ichprep.meta import build_table, clean_meta, load_source, series_position
from ichprep.meta.cleaning import CleanOptions
from ichprep.meta.table import fix_mask


def manifest(**columns) -> pd.DataFrame:
    """A small manifest: given columns plus defaults for the ones a test does not care about."""
    n = len(next(iter(columns.values())))
    base = {"id": [f"ID_{k}" for k in range(n)], "status": "ok", "img_pct_window": 0.3,
            "source": [f"d/ID_{k}.dcm" for k in range(n)]}
    return pd.DataFrame({**base, **columns})


def test_slices_are_ordered_by_z_within_their_series():
    table = pd.DataFrame({
        "SOPInstanceUID": ["a_top", "b_only", "a_low", "a_mid", "loose"],
        "SeriesInstanceUID": ["A", "B", "A", "A", None],
        "ImagePositionPatient2": [30.0, 5.0, -10.0, 12.5, 1.0],
    })
    position = series_position(table).set_axis(table["SOPInstanceUID"])
    assert position.loc[["a_low", "a_mid", "a_top"], "slice_index"].tolist() == [0, 1, 2]
    assert position.loc[["a_low", "a_mid", "a_top"], "prev_id"].tolist() == [None, "a_low", "a_mid"]
    assert position.loc[["a_low", "a_mid", "a_top"], "next_id"].tolist() == ["a_mid", "a_top", None]
    assert position.loc["a_mid", "series_len"] == 3
    assert position.loc["b_only"].tolist() == [0, 1, None, None]
    assert pd.isna(position.loc["loose", "slice_index"]) and position.loc["loose", "prev_id"] is None


def test_missing_z_sorts_last_and_ties_break_by_id():
    table = pd.DataFrame({"SOPInstanceUID": ["n", "b", "a"], "SeriesInstanceUID": "S",
                          "ImagePositionPatient2": [np.nan, 1.0, 1.0]})
    assert series_position(table)["slice_index"].tolist() == [2, 1, 0]


def test_failed_rows_stay_with_their_id_and_no_pixel_summary():
    table = build_table(manifest(
        status=["ok", "failed"], SOPInstanceUID=["ID_0", None], img_pct_window=[0.4, np.nan],
        SeriesInstanceUID=["S", None], ImagePositionPatient2=[1.0, np.nan]))
    assert table["SOPInstanceUID"].tolist() == ["ID_0", "ID_1"]
    assert table["img_pct_window"].isna().tolist() == [False, True]
    assert table["fname"].tolist() == ["d/ID_0.dcm", "d/ID_1.dcm"]
    assert table["header_fix"].dtype == bool


def test_mixed_type_header_columns_become_saveable(tmp_path):
    table = build_table(manifest(
        SOPInstanceUID=["a", "b", "c"], SeriesInstanceUID="S", ImagePositionPatient2=[1.0, 2.0, 3.0],
        WindowCenter=[40.0, "40", None], Odd=[1.5, "abc", None], Raw=[b"x", b"y", None]))
    assert table["WindowCenter"].tolist()[:2] == [40.0, 40.0]
    assert table["Odd"].tolist()[:2] == ["1.5", "abc"]
    assert table["Raw"].tolist()[:2] == ["x", "y"]
    table.to_parquet(tmp_path / "t.parquet")
    table.to_feather(tmp_path / "t.fth")
    assert pd.read_feather(tmp_path / "t.fth").shape == table.shape


def test_header_fix_is_derived_like_the_reader_when_absent():
    grid = [(pr, bits, icpt) for pr in (0, 1) for bits in (12, 16) for icpt in (-1024.0, -1000.0, -99.0, 0.0, 1.0)]
    frame = pd.DataFrame(grid, columns=["PixelRepresentation", "BitsStored", "RescaleIntercept"])
    assert fix_mask(frame).tolist() == [needs_fix(*row) for row in grid]


def test_header_fix_from_the_manifest_is_kept():
    table = build_table(manifest(SOPInstanceUID=["a", "b"], header_fix=[True, None],
                                 PixelRepresentation=[1, 1], BitsStored=[16, 16], RescaleIntercept=[-1024.0] * 2))
    assert table["header_fix"].tolist() == [True, False]


def test_real_slices_neighbours_follow_pydicom_z():
    table = build_table(real_manifest())
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    z = {p.stem: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
         for p in TRAIN_IMAGES.glob("*.dcm")}
    series = {p.stem: pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in TRAIN_IMAGES.glob("*.dcm")}
    for uid, group in table.groupby("SeriesInstanceUID"):
        expected = sorted((i for i, s in series.items() if s == uid), key=lambda i: z[i])
        ordered = group.sort_values("slice_index")
        assert ordered["SOPInstanceUID"].tolist() == expected
        assert ordered["next_id"].tolist() == expected[1:] + [None]
        assert (ordered["series_len"] == len(expected)).all()
    assert table["series_len"].max() >= 5


def test_load_source_takes_a_folder_or_a_manifest_path(tmp_path):
    frame = manifest(SOPInstanceUID=["a"], SeriesInstanceUID=["S"], ImagePositionPatient2=[1.0])
    frame.to_parquet(tmp_path / "manifest.parquet")
    assert load_source(tmp_path)["id"].tolist() == ["ID_0"]
    assert load_source(tmp_path / "manifest.parquet")["id"].tolist() == ["ID_0"]


def test_clean_meta_on_the_real_sample_writes_every_output(tmp_path):
    conv = tmp_path / "conv"
    conv.mkdir()
    real_manifest().to_parquet(conv / "manifest.parquet")
    out = tmp_path / "meta"
    report = clean_meta(conv, TRAIN_CSV, out, CleanOptions(min_brain=0.02, neg_ratio=1.0))

    meta = pd.read_parquet(out / "meta.parquet")
    train = pd.read_parquet(out / "train.parquet")
    assert len(meta) == 40
    assert set(train["SOPInstanceUID"]) == set(meta.loc[meta["keep"], "SOPInstanceUID"])
    assert (meta.loc[~meta["keep"], "drop_reason"].notna()).all()
    brain = meta["img_pct_window"] < 0.02
    assert (meta.loc[brain, "drop_reason"] == "little_brain").all()
    for column in ("SOPInstanceUID", *LABELS, "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                   "ImagePositionPatient2", "slice_index", "prev_id", "next_id", "fold"):
        assert column in train.columns, column
    assert set(train["fold"]) <= {"train", "valid"}
    assert train.groupby("PatientID")["fold"].nunique().max() == 1

    labels = read_labels(TRAIN_CSV)
    positives = labels.set_index("SOPInstanceUID").loc[train["SOPInstanceUID"], list(LABELS)]
    assert (positives.to_numpy() == train[list(LABELS)].to_numpy()).all()
    assert report["positives_before"]["any"] == 28
    assert report["positives_after"]["any"] == 28 - int((brain & meta["any"].eq(1)).sum())

    assert pd.read_feather(out / "df_trn.fth")["SOPInstanceUID"].tolist() == train["SOPInstanceUID"].tolist()
    assert len(pd.read_feather(out / "comb.fth")) == 40
    assert list(pd.read_feather(out / "labels.fth").columns) == ["ID", *LABELS]
    assert json.loads((out / "report.json").read_text()) == report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_clean_meta_without_labels_keeps_all_readable_rows(tmp_path):
    conv = tmp_path / "conv"
    conv.mkdir()
    frame = real_manifest()
    frame.to_parquet(conv / "manifest.parquet")
    report = clean_meta(conv / "manifest.parquet", None, tmp_path / "meta")
    assert report["rows_kept"] == int((frame["img_pct_window"] >= 0.02).sum())
    assert not (tmp_path / "meta" / "labels.fth").exists()


def test_clean_meta_scans_a_dicom_folder_like_the_manifest(tmp_path):
    require_rsna()
    pytest.importorskip("ichprep.convert.run.pipeline")
    from_dicoms = clean_meta(TRAIN_IMAGES, TRAIN_CSV, tmp_path / "a", jobs=1)
    conv = tmp_path / "conv"
    conv.mkdir()
    real_manifest().to_parquet(conv / "manifest.parquet")
    from_manifest = clean_meta(conv, TRAIN_CSV, tmp_path / "b")
    assert from_dicoms == from_manifest
    a = pd.read_parquet(tmp_path / "a" / "train.parquet")
    b = pd.read_parquet(tmp_path / "b" / "train.parquet")
    assert a["SOPInstanceUID"].tolist() == b["SOPInstanceUID"].tolist()

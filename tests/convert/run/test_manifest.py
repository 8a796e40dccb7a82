"""The manifest table: column order and types, part files for crash safety, last word per input."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ichprep.convert.run import manifest
from ichprep.convert.run.manifest import LEAD_COLUMNS, STAT_COLUMNS, ManifestWriter


def row(image_id: str, status: str = "ok", **extra) -> dict:
    base = {
        "id": image_id,
        "source": f"/data/{image_id}.dcm",
        "fname": f"/data/{image_id}.dcm",
        "status": status,
        "error": None if status == "ok" else "broken",
    }
    return base | extra


def test_frame_puts_lead_columns_first_and_adds_missing_ones():
    table = manifest.frame([row("a", Rows=512, img_min=0), row("b", "failed")])
    assert list(table.columns[: len(LEAD_COLUMNS)]) == LEAD_COLUMNS
    assert set(STAT_COLUMNS) <= set(table.columns)
    assert table["id"].tolist() == ["a", "b"]


def test_frame_types_save_to_parquet(tmp_path):
    rows = [
        row("a", header_fix=True, img_min=1, img_pct_window=0.25, WindowCenter=40, row=3),
        row("b", "failed", WindowCenter="40\\40", img_min=None),
        row("c", header_fix=None, WindowCenter=36.5, ImageType=["ORIGINAL", "PRIMARY"]),
    ]
    table = manifest.frame(rows)
    assert table["header_fix"].dtype == bool and table["header_fix"].tolist() == [True, False, False]
    for column in STAT_COLUMNS:
        assert table[column].dtype == "float64"
    assert math.isnan(table.loc[1, "img_min"]) and math.isnan(table.loc[1, "img_pct_window"])
    assert table["WindowCenter"].tolist() == ["40", "40\\40", "36.5"]
    assert str(table["row"].dtype) == "Int64" and table.loc[0, "row"] == 3 and table["row"].isna().tolist() == [False, True, True]
    path = tmp_path / "m.parquet"
    manifest.write_atomic(table, path)
    back = pd.read_parquet(path)
    assert back["id"].tolist() == ["a", "b", "c"]
    assert back["header_fix"].tolist() == [True, False, False]
    assert list(tmp_path.iterdir()) == [path]


def test_frame_of_no_rows_has_the_lead_columns():
    assert list(manifest.frame([]).columns) == LEAD_COLUMNS + STAT_COLUMNS


def test_writer_flushes_parts_that_load_sees_before_finalize(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "FLUSH_ROWS", 2)
    writer = ManifestWriter(tmp_path)
    writer.add([row("a"), row("b")])
    writer.add([row("c")])
    assert len(list((tmp_path / manifest.STATE_DIR / manifest.PARTS).glob("part-*.parquet"))) == 1
    assert manifest.load(tmp_path)["id"].tolist() == ["a", "b"]
    writer.flush()
    assert manifest.load(tmp_path)["id"].tolist() == ["a", "b", "c"]
    assert not (tmp_path / manifest.MANIFEST).exists()


def test_writer_flushes_by_time_as_well_as_by_count(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(manifest.time, "monotonic", lambda: clock[0])
    writer = ManifestWriter(tmp_path)
    parts = tmp_path / manifest.STATE_DIR / manifest.PARTS
    writer.add([row("a")])
    clock[0] += manifest.FLUSH_SECONDS - 1
    writer.add([row("b")])
    assert not list(parts.glob("part-*.parquet")), "a few rows within half a minute wait for more"
    clock[0] += 1
    writer.add([row("c")])
    assert manifest.load(tmp_path)["id"].tolist() == ["a", "b", "c"], "half a minute after the last flush they are on disk"
    clock[0] += 5
    writer.add([row("d")])
    assert len(list(parts.glob("part-*.parquet"))) == 1, "the clock restarts at each flush"


def test_finalize_merges_with_the_previous_manifest_last_word_per_input(tmp_path):
    first = ManifestWriter(tmp_path)
    first.add([row("a", "failed"), row("b")])
    assert first.finalize()
    second = ManifestWriter(tmp_path)
    second.add([row("a"), row("c", "failed")])
    assert second.finalize()
    table = manifest.load(tmp_path)
    assert sorted(table["id"]) == ["a", "b", "c"]
    status = dict(zip(table["id"], table["status"]))
    assert status == {"a": "ok", "b": "ok", "c": "failed"}
    on_disk = pd.read_parquet(tmp_path / manifest.MANIFEST)
    assert dict(zip(on_disk["id"], on_disk["status"])) == status
    assert not list((tmp_path / manifest.STATE_DIR / manifest.PARTS).glob("part-*"))


def test_parts_of_a_crashed_run_are_picked_up_by_the_next_one(tmp_path):
    crashed = ManifestWriter(tmp_path)
    crashed.add([row("a"), row("b", "failed")])
    crashed.flush()
    resumed = ManifestWriter(tmp_path)
    resumed.add([row("b")])
    resumed.finalize()
    table = manifest.load(tmp_path)
    assert dict(zip(table["id"], table["status"])) == {"a": "ok", "b": "ok"}


def test_writer_numbers_new_parts_after_existing_ones(tmp_path):
    ManifestWriter(tmp_path).flush()
    first = ManifestWriter(tmp_path)
    first.add([row("a")])
    first.flush()
    second = ManifestWriter(tmp_path)
    second.add([row("b")])
    second.flush()
    names = sorted(p.name for p in (tmp_path / manifest.STATE_DIR / manifest.PARTS).iterdir())
    assert names == ["part-000000.parquet", "part-000001.parquet"]


def test_load_of_an_empty_folder_is_an_empty_manifest(tmp_path):
    table = manifest.load(tmp_path)
    assert table.empty and "id" in table.columns


@pytest.mark.parametrize("n", [1, 3])
def test_mixed_header_columns_across_parts_still_merge(tmp_path, n):
    writer = ManifestWriter(tmp_path)
    writer.add([row(f"i{k}", WindowCenter=40) for k in range(n)])
    writer.flush()
    writer.add([row("j", WindowCenter="40\\40", MultiWindowCenter=1)])
    writer.finalize()
    table = pd.read_parquet(tmp_path / manifest.MANIFEST)
    assert len(table) == n + 1
    assert table["WindowCenter"].tolist() == ["40"] * n + ["40\\40"]
    assert table["MultiWindowCenter"].isna().sum() == n and table["MultiWindowCenter"].iloc[-1] == 1


def test_a_column_of_numbers_and_numeric_text_becomes_numeric_and_odd_values_text():
    table = manifest.frame(
        [
            row("a", RescaleIntercept=-1024),
            row("b", RescaleIntercept="-1000.5"),
            row("c", SliceThickness=5),
            row("d", SliceThickness="five"),
        ]
    )
    assert table["RescaleIntercept"].tolist()[:2] == [-1024.0, -1000.5]
    assert table["SliceThickness"].dropna().tolist() == ["5", "five"]


def test_a_merge_agrees_one_type_per_column_across_parts(tmp_path):
    writer = ManifestWriter(tmp_path)
    writer.add([row("a", RescaleIntercept=-1024, SliceThickness=5, row=0)])
    writer.flush()
    writer.add([row("b", RescaleIntercept="-1000.5", SliceThickness="five")])
    writer.flush()
    writer.add([row("c", "failed", RescaleIntercept=-1024.5)])
    writer.finalize()
    table = pd.read_parquet(tmp_path / manifest.MANIFEST)
    assert table["RescaleIntercept"].tolist() == [-1024.0, -1000.5, -1024.5]
    assert table["SliceThickness"].tolist()[:2] == ["5", "five"] and pd.isna(table["SliceThickness"].iloc[2])
    assert str(table["row"].dtype) == "Int64" and table["row"].tolist()[0] == 0 and table["row"].isna().tolist()[1:] == [True, True]
    assert list(table.columns[: len(LEAD_COLUMNS)]) == LEAD_COLUMNS


def test_two_inputs_with_one_id_each_keep_their_row(tmp_path):
    writer = ManifestWriter(tmp_path)
    first = row("ID_x") | {"source": "/data/a/ID_x.dcm"}
    second = row("ID_x", "failed") | {"source": "/data/b/ID_x.dcm", "error": "duplicate image id (also /data/a/ID_x.dcm)"}
    writer.add([first, second])
    writer.finalize()
    table = manifest.load(tmp_path)
    assert table["source"].tolist() == ["/data/a/ID_x.dcm", "/data/b/ID_x.dcm"]
    assert table["status"].tolist() == ["ok", "failed"]


def test_a_run_that_adds_nothing_leaves_the_manifest_untouched(tmp_path):
    writer = ManifestWriter(tmp_path)
    writer.add([row("a")])
    writer.finalize()
    before = (tmp_path / manifest.MANIFEST).stat().st_mtime_ns
    assert not ManifestWriter(tmp_path).finalize()
    assert (tmp_path / manifest.MANIFEST).stat().st_mtime_ns == before


def test_load_reads_only_the_columns_asked_for(tmp_path):
    writer = ManifestWriter(tmp_path)
    writer.add([row("a", Rows=512), row("b", "failed")])
    writer.finalize()
    table = manifest.load(tmp_path, manifest.STATE_COLUMNS)
    assert list(table.columns) == manifest.STATE_COLUMNS and table["id"].tolist() == ["a", "b"]

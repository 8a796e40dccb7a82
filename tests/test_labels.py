"""Reading the competition's long label CSV: pivot, duplicates, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ich_fixtures import fabricate, write_train_table
from real_manifest import RSNA

from ichprep import LABELS, SUBTYPES
from ichprep.errors import LabelsError
from ichprep.labels import compare_ids, load_labels, read_labels


def write_csv(tmp_path: Path, rows: list[str], header: str = "ID,Label") -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def image_rows(image: str, positives: set[str]) -> list[str]:
    """The six rows of one image in the CSV's own subtype order."""
    return [f"{image}_{s},{int(s in positives)}" for s in SUBTYPES]


def test_pivot_gives_one_row_per_image_with_labels_in_order(tmp_path):
    rows = image_rows("ID_aaa", {"any", "subdural"}) + image_rows("ID_bbb", set())
    labels = read_labels(write_csv(tmp_path, rows))
    assert list(labels.columns) == ["SOPInstanceUID", *LABELS]
    assert labels["SOPInstanceUID"].tolist() == ["ID_aaa", "ID_bbb"]
    assert labels.iloc[0][list(LABELS)].tolist() == [1, 0, 0, 0, 0, 1]
    assert labels.iloc[1][list(LABELS)].tolist() == [0] * 6


def test_id_is_split_at_the_last_underscore(tmp_path):
    labels = read_labels(write_csv(tmp_path, image_rows("ID_a_b_c", {"epidural"})))
    assert labels["SOPInstanceUID"].tolist() == ["ID_a_b_c"]
    assert labels.loc[0, "epidural"] == 1


def test_repeated_rows_are_dropped(tmp_path):
    rows = image_rows("ID_aaa", {"any", "epidural"})
    labels = read_labels(write_csv(tmp_path, rows + rows[:3] + image_rows("ID_bbb", set())))
    assert labels["SOPInstanceUID"].tolist() == ["ID_aaa", "ID_bbb"]
    assert labels.loc[0, "epidural"] == 1 and labels.loc[0, "any"] == 1


def test_conflicting_repeats_name_both_lines(tmp_path):
    rows = image_rows("ID_aaa", set()) + ["ID_aaa_subdural,1"]
    with pytest.raises(LabelsError, match=r"lines 6, 8: conflicting labels for ID_aaa_subdural"):
        read_labels(write_csv(tmp_path, rows))


def test_image_missing_a_subtype_row_is_named(tmp_path):
    rows = image_rows("ID_aaa", set()) + image_rows("ID_bbb", set())[1:]
    with pytest.raises(LabelsError, match=r"image ID_bbb has no row for subtype\(s\) epidural"):
        read_labels(write_csv(tmp_path, rows))


def test_unknown_subtype_names_the_line(tmp_path):
    rows = image_rows("ID_aaa", set()) + ["ID_bbb_bleed,1"]
    with pytest.raises(LabelsError, match=r"line 8: unknown subtype in ID 'ID_bbb_bleed'"):
        read_labels(write_csv(tmp_path, rows))


def test_id_without_subtype_names_the_line(tmp_path):
    with pytest.raises(LabelsError, match=r"line 2: unknown subtype in ID 'nounderscore'"):
        read_labels(write_csv(tmp_path, ["nounderscore,1"]))


@pytest.mark.parametrize("value", ["2", "yes", "", "0.5"])
def test_label_other_than_0_or_1_names_the_line(tmp_path, value):
    rows = image_rows("ID_aaa", set())
    rows[2] = f"ID_aaa_{SUBTYPES[2]},{value}"
    with pytest.raises(LabelsError, match=r"line 4: label must be 0 or 1"):
        read_labels(write_csv(tmp_path, rows))


def test_missing_column_is_named(tmp_path):
    with pytest.raises(LabelsError, match=r"missing column\(s\) Label"):
        read_labels(write_csv(tmp_path, ["ID_aaa_any,1"], header="ID,Value"))


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(LabelsError, match="empty file"):
        read_labels(path)


def test_compare_ids_counts_both_sides():
    found = compare_ids(pd.Series(["a", "b", "c"]), pd.Series(["b", "c", "d", "e"]), examples=1)
    assert found == {"in_labels_not_data": 2, "in_labels_not_data_examples": ["d"],
                     "in_data_not_labels": 1, "in_data_not_labels_examples": ["a"]}


def test_real_stage_2_labels_match_the_data_readme():
    csv = RSNA / "stage_2_train.csv"
    if not csv.is_file():
        pytest.skip("real RSNA sample data not present")
    labels = read_labels(csv)
    assert len(labels) == 40
    counts = labels[list(LABELS)].sum().to_dict()
    assert counts == {"any": 28, "epidural": 0, "intraparenchymal": 26, "intraventricular": 5,
                      "subarachnoid": 10, "subdural": 8}


def test_first_malformed_line_is_the_one_named(tmp_path):
    rows = image_rows("ID_aaa", set()) + ["ID_bbb_bleed,1", "nounderscore,1"]
    with pytest.raises(LabelsError, match=r"line 8: unknown subtype in ID 'ID_bbb_bleed'"):
        read_labels(write_csv(tmp_path, rows))


def test_ragged_csv_is_refused_with_its_line(tmp_path):
    rows = image_rows("ID_aaa", set()) + ["ID_bbb_any,1,extra"]
    with pytest.raises(LabelsError, match=r"not a readable CSV .*line 8"):
        read_labels(write_csv(tmp_path, rows))


def test_labels_load_indexed_by_id_from_the_long_csv_and_from_train_parquet(tmp_path):
    ids, _, labels, table = fabricate(12, seed=1, size=16)
    csv = tmp_path / "stage_1_train.csv"
    rows = [(f"{i}_{s}", int(labels[n][LABELS.index(s)])) for n, i in enumerate(ids) for s in
            ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any")]
    pd.DataFrame(rows + rows[:3], columns=["ID", "Label"]).to_csv(csv, index=False)
    from_csv = load_labels(csv)
    assert np.array_equal(from_csv.loc[ids, list(LABELS)].to_numpy(), labels)
    from_parquet = load_labels(write_train_table(tmp_path / "train.parquet", ids, labels, table))
    assert np.array_equal(from_parquet.loc[ids, list(LABELS)].to_numpy(), labels)
    assert {"fold", "PatientID", "SeriesInstanceUID"} <= set(from_parquet.columns)

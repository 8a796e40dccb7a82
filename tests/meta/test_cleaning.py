"""Cleaning rules on generated tables where every row's fate is known in advance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.meta.cleaning import (
    CleanOptions,
    clean,
    format_report,
    sample_negatives,
)
from ichprep.splits import patient_folds


def make_table(rows: list[dict]) -> pd.DataFrame:
    """A metadata table: each row dict gives id, patient, pct (img_pct_window) and positive."""
    return pd.DataFrame({
        "SOPInstanceUID": [r["id"] for r in rows],
        "PatientID": [r.get("patient", "P" + r["id"]) for r in rows],
        "StudyInstanceUID": "S",
        "SeriesInstanceUID": "R",
        "ImagePositionPatient2": np.arange(len(rows), dtype=float),
        "img_pct_window": [r["pct"] for r in rows],
        "header_fix": [r.get("fix", False) for r in rows],
    })


def make_labels(rows: list[dict]) -> pd.DataFrame:
    labels = pd.DataFrame({"SOPInstanceUID": [r["id"] for r in rows if "positive" in r]})
    positive = np.array([r["positive"] for r in rows if "positive" in r], dtype=np.uint8)
    for name in LABELS:
        labels[name] = positive if name in ("any", "subdural") else np.zeros_like(positive)
    return labels


ONE_PER_RULE = [
    {"id": "unreadable", "pct": np.nan, "positive": True},
    {"id": "little", "pct": 0.01, "positive": True},
    {"id": "kept_pos", "pct": 0.3, "positive": True, "fix": True},
    {"id": "neg_a", "pct": 0.3, "positive": False},
    {"id": "neg_b", "pct": 0.3, "positive": False},
    {"id": "no_label", "pct": 0.3},
]


def reasons(meta: pd.DataFrame) -> dict[str, object]:
    return dict(zip(meta["SOPInstanceUID"], meta["drop_reason"]))


def test_each_rule_drops_exactly_its_row():
    meta, train, report = clean(make_table(ONE_PER_RULE), make_labels(ONE_PER_RULE))
    found = reasons(meta)
    assert found["unreadable"] == "unreadable"
    assert found["little"] == "little_brain"
    assert found["no_label"] == "unlabelled"
    assert found["kept_pos"] is None
    # one positive survives, so a 1:1 ratio keeps exactly one of the two negatives
    assert sorted([found["neg_a"] or "", found["neg_b"] or ""]) == ["", "sampled_out"]
    assert meta["keep"].tolist() == meta["drop_reason"].isna().tolist()
    assert set(train["SOPInstanceUID"]) == {k for k, v in found.items() if v is None}
    assert report["dropped"] == {"unreadable": 1, "little_brain": 1, "unlabelled": 1, "sampled_out": 1}
    assert report["header_fix"] == 1
    assert report["positives_before"]["any"] == 3 and report["positives_after"]["any"] == 1
    assert report["negatives_before"] == 2 and report["negatives_after"] == 1


def test_min_brain_threshold_is_an_option():
    rows = [{"id": f"i{k}", "pct": pct, "positive": True} for k, pct in enumerate([0.01, 0.05, 0.2])]
    meta, _, _ = clean(make_table(rows), make_labels(rows), CleanOptions(min_brain=0.1))
    assert reasons(meta) == {"i0": "little_brain", "i1": "little_brain", "i2": None}
    meta, _, _ = clean(make_table(rows), make_labels(rows), CleanOptions(min_brain=0.0))
    assert meta["keep"].all()


@pytest.mark.parametrize("ratio, expected", [(1.0, 10), (0.5, 5), (2.0, 20), (10.0, 40), (0.0, 0)])
def test_negatives_are_sampled_to_the_ratio(ratio, expected):
    rows = [{"id": f"p{k:02d}", "pct": 0.3, "positive": True} for k in range(10)]
    rows += [{"id": f"n{k:02d}", "pct": 0.3, "positive": False} for k in range(40)]
    _, train, _ = clean(make_table(rows), make_labels(rows), CleanOptions(neg_ratio=ratio))
    assert int((train["any"] == 1).sum()) == 10
    assert int((train["any"] == 0).sum()) == expected


def test_no_sample_keeps_every_negative():
    rows = [{"id": "p", "pct": 0.3, "positive": True}]
    rows += [{"id": f"n{k}", "pct": 0.3, "positive": False} for k in range(5)]
    _, train, report = clean(make_table(rows), make_labels(rows), CleanOptions(sample=False))
    assert len(train) == 6
    assert report["dropped"]["sampled_out"] == 0


def test_sample_depends_on_seed_not_on_row_order():
    ids = pd.Series([f"n{k:03d}" for k in range(200)])
    any_label = pd.Series(np.r_[np.ones(50), np.zeros(150)].astype(int))
    candidates = pd.Series(True, index=ids.index)
    dropped = sample_negatives(any_label, ids, candidates, 1.0, seed=7)
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = sample_negatives(any_label.iloc[order].reset_index(drop=True), ids.iloc[order].reset_index(drop=True),
                                candidates, 1.0, seed=7)
    other_seed = sample_negatives(any_label, ids, candidates, 1.0, seed=8)
    kept = set(ids[~dropped & (any_label == 0)])
    assert len(kept) == 50
    assert set(ids.iloc[order].reset_index(drop=True)[~shuffled & (any_label.iloc[order].reset_index(drop=True) == 0)]) == kept
    assert set(ids[~other_seed & (any_label == 0)]) != kept


def test_folds_keep_each_patient_on_one_side():
    patients = pd.Series([f"P{k % 37}" for k in range(500)])
    folds = patient_folds(patients, val_frac=0.2, seed=42)
    per_patient = pd.DataFrame({"p": patients, "f": folds}).groupby("p")["f"].nunique()
    assert (per_patient == 1).all()
    valid_patients = patients[folds == "valid"].nunique()
    assert valid_patients == round(0.2 * 37)
    assert set(folds) == {"train", "valid"}


def test_folds_are_seeded():
    patients = pd.Series([f"P{k}" for k in range(100)])
    same = patient_folds(patients, 0.2, seed=1)
    assert same.equals(patient_folds(patients.sample(frac=1, random_state=3).sort_index(), 0.2, seed=1))
    assert not same.equals(patient_folds(patients, 0.2, seed=2))


def test_clean_assigns_folds_by_patient():
    rows = [{"id": f"i{k:03d}", "patient": f"P{k % 20}", "pct": 0.3, "positive": k % 2 == 0} for k in range(200)]
    meta, train, report = clean(make_table(rows), make_labels(rows), CleanOptions(val_frac=0.25))
    assert train.groupby("PatientID")["fold"].nunique().max() == 1
    assert meta.drop_duplicates("PatientID")["fold"].value_counts()["valid"] == 5
    assert report["folds"]["valid"]["patients"] + report["folds"]["train"]["patients"] == 20


def test_without_labels_nothing_is_sampled_and_train_has_no_label_columns():
    rows = [{"id": "a", "pct": 0.3}, {"id": "b", "pct": np.nan}, {"id": "c", "pct": 0.001}]
    meta, train, report = clean(make_table(rows), None)
    assert reasons(meta) == {"a": None, "b": "unreadable", "c": "little_brain"}
    assert train["SOPInstanceUID"].tolist() == ["a"]
    assert not set(LABELS) & set(train.columns)
    assert "no labels" in format_report(report)


def test_train_labels_are_plain_0_1_integers():
    _, train, _ = clean(make_table(ONE_PER_RULE), make_labels(ONE_PER_RULE))
    for name in LABELS:
        assert train[name].dtype == np.uint8
        assert set(train[name]) <= {0, 1}


def test_report_names_id_mismatches():
    rows = ONE_PER_RULE + [{"id": "ghost", "pct": 0.3, "positive": True}]
    table = make_table(rows)
    _, _, report = clean(table[table["SOPInstanceUID"] != "ghost"], make_labels(rows))
    assert report["ids"]["in_labels_not_data"] == 1
    assert report["ids"]["in_labels_not_data_examples"] == ["ghost"]
    assert report["ids"]["in_data_not_labels_examples"] == ["no_label"]
    text = format_report(report)
    assert "ids in labels but not in data: 1 (e.g. ghost)" in text


@pytest.mark.parametrize("bad", [dict(min_brain=-0.1), dict(neg_ratio=-1.0), dict(val_frac=1.0)])
def test_out_of_range_options_are_refused(bad):
    with pytest.raises(IchprepError, match="must be"):
        CleanOptions(**bad)


def patient_labels(holders: dict[str, list[int]], n_patients: int = 10, slices: int = 3) -> tuple[pd.Series, pd.DataFrame]:
    """Rows of ``n_patients`` patients; each label in ``holders`` is positive on the first slice of those patients."""
    patients = pd.Series([f"P{k}" for k in range(n_patients) for _ in range(slices)])
    labels = pd.DataFrame(0, index=patients.index, columns=list(LABELS))
    for name, owners in holders.items():
        for k in owners:
            labels.loc[k * slices, name] = 1
    labels["any"] = labels.drop(columns="any").max(axis=1)
    return patients, labels


def holds(folds: pd.Series, labels: pd.DataFrame, fold: str, name: str, value: int = 1) -> bool:
    return bool((labels.loc[folds == fold, name] == value).any())


def test_validation_holds_both_classes_of_every_label_two_patients_have():
    patients, labels = patient_labels({"epidural": [3, 8], "subdural": [1, 2, 5, 8]})
    plain_lacked = 0
    for seed in range(20):
        plain = patient_folds(patients, 0.2, seed)
        folds = patient_folds(patients, 0.2, seed, labels)
        plain_lacked += not holds(plain, labels, "valid", "epidural")
        assert patients[folds == "valid"].nunique() == 2, seed
        assert pd.DataFrame({"p": patients, "f": folds}).groupby("p")["f"].nunique().max() == 1
        for name in ("any", "epidural", "subdural"):
            assert holds(folds, labels, "valid", name) and holds(folds, labels, "train", name), (seed, name)
        assert holds(folds, labels, "valid", "any", 0)
    assert plain_lacked >= 10, "the plain draw should often miss a label two patients of ten have"


def test_validation_grows_when_its_patients_cannot_hold_every_rare_label():
    patients, labels = patient_labels({"epidural": [3, 8], "intraventricular": [0, 9], "subdural": [1, 2, 5]})
    for seed in range(20):
        folds = patient_folds(patients, 0.2, seed, labels)
        assert 2 <= patients[folds == "valid"].nunique() <= 4
        for name in ("epidural", "intraventricular", "subdural"):
            assert holds(folds, labels, "valid", name) and holds(folds, labels, "train", name), (seed, name)


def test_a_draw_that_already_holds_every_class_is_kept():
    patients, labels = patient_labels({"epidural": list(range(10))})
    for seed in range(5):
        assert patient_folds(patients, 0.3, seed, labels).equals(patient_folds(patients, 0.3, seed))


def test_a_label_only_one_patient_has_is_not_chased():
    patients, labels = patient_labels({"epidural": [4], "subdural": [1, 7]})
    for seed in range(10):
        folds = patient_folds(patients, 0.2, seed, labels)
        assert holds(folds, labels, "valid", "subdural") and holds(folds, labels, "train", "subdural")
        assert patients[folds == "valid"].nunique() == 2


def test_label_aware_folds_do_not_depend_on_row_order():
    patients, labels = patient_labels({"epidural": [3, 8], "subdural": [1, 2, 5]})
    order = np.random.default_rng(0).permutation(len(patients))
    folds = patient_folds(patients, 0.2, 4, labels)
    shuffled = patient_folds(patients.iloc[order], 0.2, 4, labels.iloc[order])
    assert shuffled.sort_index().equals(folds)


def test_clean_meta_folds_hold_positives_of_every_label():
    rows = [{"id": f"i{k:03d}", "patient": f"P{k % 20}", "pct": 0.3, "positive": k % 20 in (3, 17) and k < 40} for k in range(200)]
    for seed in range(5):
        meta, _, _ = clean(make_table(rows), make_labels(rows), CleanOptions(val_frac=0.1, seed=seed, sample=False))
        valid = meta[meta["fold"] == "valid"]
        assert valid["PatientID"].nunique() == 2
        assert (valid["subdural"] == 1).any() and (valid["any"] == 0).any()

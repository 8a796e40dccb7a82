"""A rebalanced sample trains, the true distribution validates: clean-meta's sample, --neg-ratio, folds over every image."""

import math

import numpy as np
import pandas as pd
import pytest
from ich_fixtures import fabricate, write_folder, write_manifest, write_train_table

from ichprep import LABELS
from ichprep.labels import ID_COLUMN
from ichprep.store import open_converted
from ichprep.train.trainset import prepare


@pytest.fixture(scope="module")
def rebalanced(tmp_path_factory):
    """120 images of 30 patients (4 slices each), about a quarter positive, and a clean-meta folder beside them: every
    positive and one negative per positive in train.parquet, every image's labels in labels.parquet, every row's
    patient and fold in meta.parquet."""
    root = tmp_path_factory.mktemp("rebalanced")
    ids, images, labels, table = fabricate(120, seed=8, size=8, slices_per_series=4)
    rng = np.random.default_rng(0)
    labels[rng.random(120) < 0.5] = 0  # fewer positives than the fixture's half
    table["PatientID"] = [f"ID_p{k // 4:03d}" for k in range(120)]
    write_folder(root / "img", ids, images)
    write_manifest(root / "img", table)
    meta = root / "meta"
    meta.mkdir()
    write_train_table(meta / "meta.parquet", ids, labels, table)
    every = pd.read_parquet(meta / "meta.parquet")
    every[[ID_COLUMN, *LABELS]].to_parquet(meta / "labels.parquet")
    positive = every["any"] == 1
    negatives = every.index[~positive].to_numpy()
    kept = every[positive | every.index.isin(rng.choice(negatives, int(positive.sum()), replace=False))]
    kept.to_parquet(meta / "train.parquet")
    return root, every.set_index(ID_COLUMN), kept.set_index(ID_COLUMN)


def test_validation_is_every_labelled_image_of_the_held_out_patients_and_training_the_sample_of_the_others(rebalanced):
    root, every, kept = rebalanced
    ts = prepare(open_converted(root / "img"), root / "meta" / "train.parquet")
    valid_patients = set(every.loc[every["fold"] == "valid", "PatientID"])
    assert set(ts.val_ids) == set(every.index[every["PatientID"].isin(valid_patients)])  # sampled-out negatives too
    assert set(ts.train_ids) == set(kept.index[~kept["PatientID"].isin(valid_patients)])
    assert ts.train_rate[0] == pytest.approx(kept.loc[ts.train_ids, "any"].mean())
    pool = every.index[~every["PatientID"].isin(valid_patients)]
    assert ts.true_rate == pytest.approx(every.loc[pool, list(LABELS)].mean().to_numpy())
    assert ts.train_rate[0] > 1.5 * ts.true_rate[0]
    assert f"validating on all {len(ts.val_ids)} labelled images of the held-out patients, corrected to the true rate" in ts.notes
    assert f"training on the table's rebalanced sample: any in {ts.train_rate[0]:.1%} ({ts.true_rate[0]:.1%} in every" \
        " labelled image of those patients)" in ts.notes


def test_folds_cover_every_labelled_image_once_by_patient_and_train_only_on_the_sample(rebalanced):
    root, every, kept = rebalanced
    data = open_converted(root / "img")
    held = [prepare(data, root / "meta" / "train.parquet", folds=3, fold=f) for f in range(3)]
    assert sorted(i for ts in held for i in ts.val_ids) == sorted(every.index)
    for ts in held:
        assert set(ts.train_ids) <= set(kept.index) and not set(ts.train_ids) & set(ts.val_ids)
        assert not set(every.loc[ts.train_ids, "PatientID"]) & set(every.loc[ts.val_ids, "PatientID"])


def test_neg_ratio_draws_its_negatives_afresh_each_epoch_from_every_image_of_the_training_patients(rebalanced):
    root, every, _ = rebalanced
    ts = prepare(open_converted(root / "img"), root / "meta" / "train.parquet", folds=2, fold=0, neg_ratio=2.0)
    pool = every.loc[ts.train_ids]
    assert set(ts.train_ids) == set(every.index) - set(ts.val_ids)  # the pool: every image of the training patients
    first, second = ts.epoch_rows(0, seed=1), ts.epoch_rows(1, seed=1)
    positives = int((pool["any"] == 1).sum())
    for rows in (first, second):
        drawn = pool.iloc[rows]
        assert (drawn["any"] == 1).sum() == positives and (drawn["any"] == 0).sum() == 2 * positives
    assert not np.array_equal(first, second) and np.array_equal(first, ts.epoch_rows(0, seed=1))
    assert ts.train_rate[0] == pytest.approx(1 / 3)
    every_one = prepare(open_converted(root / "img"), root / "meta" / "train.parquet", folds=2, fold=0, neg_ratio=math.inf)
    assert len(every_one.epoch_rows(0, seed=1)) == len(every_one.train_ids)
    assert every_one.train_rate == pytest.approx(every_one.true_rate)


def test_a_table_that_is_not_rebalanced_trains_and_validates_as_before(rebalanced):
    root, every, _ = rebalanced
    ts = prepare(open_converted(root / "img"), root / "meta" / "meta.parquet")
    assert len(ts.train_ids) + len(ts.val_ids) == len(every) and np.allclose(ts.train_rate, ts.true_rate)
    assert ts.epoch_rows(0, seed=1) is None

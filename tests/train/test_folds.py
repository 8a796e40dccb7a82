"""`train --folds`: patient-grouped folds, a complete out-of-fold table, the fold ensemble, and one fold at a time."""

import numpy as np
import pandas as pd
import pytest
from cli_run import ichprep
from ich_fixtures import labelled_folder

from ichprep import LABELS
from ichprep.predict import predict
from ichprep.splits import patient_kfold

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN = ("--epochs", "1", "-b", "8", "--workers", "0", "-q", "--no-pretrained", "--no-augment", "--arch", "test_resnet")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """48 images of 16 px: 12 series of 4 slices, 6 patients."""
    root = tmp_path_factory.mktemp("folds")
    ids, _, labels, table = labelled_folder(root, 48, seed=4, size=16)
    return root, ids, labels, table


def test_kfold_keeps_patients_whole_and_spreads_images_and_positive_patients():
    rng = np.random.default_rng(0)
    patients = pd.Series(np.repeat([f"p{i}" for i in range(40)], rng.integers(20, 40, 40)))
    positive = pd.Series(rng.random(len(patients)) < 0.05)
    folds = patient_kfold(patients, 5, seed=1, positive=positive)
    assert set(folds) == set(range(5))
    assert (folds.groupby(patients).nunique() == 1).all()
    sizes = folds.value_counts()
    assert sizes.max() - sizes.min() <= 40
    positive_patients = positive.groupby(patients).any()
    per_fold = folds.groupby(patients).first()[positive_patients].value_counts()
    assert per_fold.max() - per_fold.min() <= 1
    assert folds.equals(patient_kfold(patients, 5, seed=1, positive=positive))


def test_folds_give_a_complete_patient_disjoint_oof_table_and_a_fold_ensemble(blobs, tmp_path):
    root, ids, labels, table = blobs
    run = tmp_path / "run"
    done = ichprep("train", root / "img", "--out", run, "--folds", "3", *RUN)
    assert done.exit_code == 0, done.output
    assert "out-of-fold weighted log loss" in done.stderr and done.stdout.strip() == f"model: {run / 'model.pt'}"
    oof = pd.read_csv(run / "oof.csv")
    assert list(oof.columns) == ["image", "fold", *LABELS]
    assert sorted(oof["image"]) == sorted(ids)  # every labelled image exactly once
    patients = table["PatientID"].reindex(oof["image"]).to_numpy()
    assert (pd.Series(oof["fold"].to_numpy()).groupby(patients).nunique() == 1).all()
    for fold in range(3):
        held = oof.loc[oof["fold"] == fold, "image"].tolist()
        by_its_model = predict(run / f"fold{fold}" / "model.pt", root / "img", workers=0, quiet=True, ids=held)
        assert np.allclose(oof.loc[oof["fold"] == fold, list(LABELS)].to_numpy(), by_its_model.probs, atol=1e-6)
        note = f"{len(ids) - len(held)} train / {len(held)} validation images, split by fold {fold} of 3 patient-grouped folds"
        assert note in done.stderr  # the fold trained on every other image, hence on no patient of its own
    scores = pd.read_csv(run / "folds.csv")
    assert scores["fold"].tolist() == [0, 1, 2] and scores["images"].sum() == len(ids)
    ensemble = predict(run / "model.pt", root / "img", workers=0, quiet=True)
    members = [predict(run / f"fold{f}" / "model.pt", root / "img", workers=0, quiet=True).probs for f in range(3)]
    assert np.allclose(ensemble.probs, np.mean(members, axis=0), atol=1e-9)
    done = ichprep("evaluate", run / "model.pt", run / "fold0" / "model.pt", root / "img", "--labels", root / "train.parquet",
                   "--json", "-q", "--workers", "0")
    assert done.exit_code == 0, done.output
    unseen = ichprep("evaluate", run / "model.pt", root / "img", "--labels", root / "train.parquet", "-q", "--tta", "hflip")
    assert unseen.exit_code == 2 and "never saw that view in training (its augmentation drew no flips)" in unseen.stderr


def test_train_folds_trains_and_averages_those_folds_alone(blobs, tmp_path):
    root, ids, _, _ = blobs
    run = tmp_path / "run"
    done = ichprep("train", root / "img", "--out", run, "--folds", "3", "--train-folds", "0,2", *RUN)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in run.glob("fold*") if p.is_dir()) == ["fold0", "fold2"]
    oof = pd.read_csv(run / "oof.csv")
    assert set(oof["fold"]) == {0, 2} and 0 < len(oof) < len(ids)  # the images folds 0 and 2 held out
    members = [predict(run / f"fold{f}" / "model.pt", root / "img", workers=0, quiet=True).probs for f in (0, 2)]
    assert np.allclose(predict(run / "model.pt", root / "img", workers=0, quiet=True).probs, np.mean(members, axis=0))


def test_one_fold_at_a_time_is_assembled_when_the_last_one_is_there(blobs, tmp_path):
    root, ids, _, _ = blobs
    run = tmp_path / "run"
    for fold in (1, 0):
        done = ichprep("train", root / "img", "--out", run, "--folds", "3", "--fold", fold, *RUN)
        assert done.exit_code == 0 and "still to train" in done.stderr, done.output
        assert not (run / "oof.csv").exists() and not (run / "model.pt").exists()
    done = ichprep("train", root / "img", "--out", run, "--folds", "3", "--fold", "2", *RUN)
    assert done.exit_code == 0, done.output
    assert len(pd.read_csv(run / "oof.csv")) == len(ids) and (run / "model.pt").exists()
    again = ichprep("train", root / "img", "--out", run, "--folds", "3", *RUN)
    assert again.exit_code == 0 and again.stderr.count("finished already") == 3, again.output
    before = sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*"))
    other = ichprep("train", root / "img", "--out", run, "--folds", "3", *RUN, "--lr", "0.5", "--flips", "hflip")
    assert other.exit_code == 2 and other.stderr.count("\n") == 1, other.output
    assert f"--out {run}: fold 0 there was trained with other settings (lr, flips)" in other.stderr
    assert sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*")) == before

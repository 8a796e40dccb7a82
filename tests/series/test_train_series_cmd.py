"""`ichprep train-series` and `ichprep embed` on a small --folds run: files, refusals, exact resume."""

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_run import ichprep
from ich_fixtures import labelled_folder

from ichprep import LABELS
from ichprep.models.saved import load
from ichprep.train.recipes import RECIPES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CNN = ("--arch", "test_resnet", "--no-pretrained", "--folds", "2", "--epochs", "1", "-b", "8", "--workers", "0", "-q")
SERIES = ("--epochs", "3", "-b", "4", "-q", "--workers", "0", "--hidden", "8")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """48 blob images of 16 px in 12 series of 4, 6 patients; a 2-fold run on them."""
    root = tmp_path_factory.mktemp("tseries")
    ids, _, _, table = labelled_folder(root, 48, seed=3, size=16)
    done = ichprep("train", root / "img", "--out", root / "run", *CNN)
    assert done.exit_code == 0, done.output
    return root, ids, table


def test_train_series_writes_its_run_and_resumes_exactly(run, tmp_path):
    root, ids, table = run
    whole = ichprep("train-series", root / "run", "--out", tmp_path / "whole", *SERIES)
    assert whole.exit_code == 0, whole.output
    assert whole.stdout.strip() == f"model: {tmp_path / 'whole' / 'model.pt'}"
    for name in ("oof_embeddings.parquet", "metrics.csv", "curves.png", "last.pt", "model.pt", "scores.json"):
        assert (tmp_path / "whole" / name).exists(), name
    emb = pd.read_parquet(tmp_path / "whole" / "oof_embeddings.parquet")
    assert sorted(emb["id"]) == sorted(ids) and emb["f0000"].dtype == "float16"
    oof = pd.read_csv(root / "run" / "oof.csv").set_index("image")
    # each image's logits are its held-out fold's: the same probabilities as the run's oof.csv
    probs = 1 / (1 + pd.DataFrame(emb[[f"logit_{k}" for k in LABELS]].to_numpy(), index=emb["id"]).mul(-1).map(float).apply(
        lambda c: c.map(__import__("math").exp)))
    assert abs(probs.to_numpy() - oof.loc[emb["id"], list(LABELS)].to_numpy()).max() < 1e-4
    assert (emb.groupby("series")["slice"].apply(lambda s: sorted(s) == list(range(len(s))))).all()
    record = load(tmp_path / "whole" / "model.pt")
    assert len(record.cnns) == 2 and record.parts[0].series.series_shape.cell == "gru"
    first = ichprep("train-series", root / "run", "--out", tmp_path / "cut", *SERIES, "--stop-after", "1")
    assert first.exit_code == 0 and "continue with --resume" in first.stderr, first.output
    assert not (tmp_path / "cut" / "model.pt").exists()
    rest = ichprep("train-series", root / "run", "--out", tmp_path / "cut", *SERIES, "--resume")
    assert rest.exit_code == 0, rest.output
    assert "already made" in rest.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "metrics.csv"), pd.read_csv(tmp_path / "whole" / "metrics.csv"))
    changed = ichprep("train-series", root / "run", "--out", tmp_path / "cut", *SERIES, "--resume", "--cell", "lstm")
    assert changed.exit_code == 2 and "other settings (cell)" in changed.stderr


@pytest.mark.parametrize("args, message", [
    (("--cell", "rnn"), "--cell 'rnn': choose gru or lstm"),
    (("--conv", "4"), "--conv 4: the kernel must be odd"),
    (("--tta", "spin"), "unknown view 'spin'"),
    (("--recipe", "nope"), "--recipe 'nope': choose"),
])
def test_a_mistake_is_one_line_and_creates_nothing(run, tmp_path, args, message):
    root, _, _ = run
    done = ichprep("train-series", root / "run", "--out", tmp_path / "s", *args)
    assert done.exit_code == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.output
    assert not (tmp_path / "s").exists()


def test_a_run_without_folds_is_refused(run, tmp_path):
    root, _, _ = run
    done = ichprep("train-series", root / "run" / "fold0", "--out", tmp_path / "s")
    assert done.exit_code == 2 and "is not a finished `ichprep train --folds` run" in done.stderr
    assert not (tmp_path / "s").exists()


def test_embed_writes_float16_features_the_logits_series_and_position(run, tmp_path):
    root, ids, table = run
    out = tmp_path / "emb.parquet"
    done = ichprep("embed", root / "run" / "fold0" / "model.pt", root / "img", "--out", out, "-q", "--workers", "0", "--tta", "hflip")
    assert done.exit_code == 0, done.output
    emb = pd.read_parquet(out)
    assert sorted(emb["id"]) == sorted(ids) and emb.filter(regex=r"^f\d+$").dtypes.eq("float16").all()
    assert list(emb.columns[:4]) == ["id", "series", "position", "slice"]
    assert (emb.set_index("id")["series"] == table["SeriesInstanceUID"].reindex(emb["id"])).all()
    assert (emb.set_index("id")["position"] == table["ImagePositionPatient2"].reindex(emb["id"])).all()
    assert pq.read_schema(out).metadata[b"tta"] == b"hflip"
    both = ichprep("embed", root / "run" / "model.pt", root / "img", "--out", tmp_path / "two.parquet", "-q", "--workers", "0")
    assert both.exit_code == 0
    assert pd.read_parquet(tmp_path / "two.parquet").filter(regex=r"^f\d+$").shape[1] == 2 * emb.filter(regex=r"^f\d+$").shape[1]


@pytest.mark.parametrize("name", ["nobrainer-2019", "seutao-2019", "fastai-2019"])
def test_each_recipe_runs_end_to_end_at_tiny_scale_on_phantoms(phantoms, tmp_path, name):
    data, labels = phantoms
    done = ichprep("train", data, "--labels", labels, "--out", tmp_path / "run", "--recipe", name, "--scale", "tiny", "-q")
    assert done.exit_code == 0, done.output
    assert done.stderr.startswith(f"recipe {name} (tiny scale)") and "  --arch test_resnet  (--scale tiny)" in done.stderr
    assert "  --folds 2  (--scale tiny)" in done.stderr and "  --lr " in done.stderr  # printed in full: every option
    series = ichprep("train-series", tmp_path / "run", "--out", tmp_path / "srun", "--recipe", name, "--scale", "tiny", "-q")
    assert series.exit_code == 0, series.output
    cell = RECIPES[name].series["cell"].value if "cell" in RECIPES[name].series else "gru"
    assert f"  --cell {cell}  (" in series.stderr and "  --seed 42  (ichprep default)" in series.stderr
    record = load(tmp_path / "srun" / "model.pt")
    shape = record.parts[0].series.series_shape
    assert shape.cell == cell
    if name == "nobrainer-2019":  # one sequence model per CNN epoch kept by --snapshots, each a bag of its last 3 epochs
        assert [c.epoch for part in record.parts for c in part.cnns] == [1, 1, 2, 2] and shape.deltas
        assert [len(part.series.states) for part in record.parts] == [3, 3] and record.tta == ["hflip", "transpose"]
        assert (tmp_path / "run" / "fold1" / "epoch2.pt").is_file() and (tmp_path / "srun" / "cnn-epoch2" / "last.pt").is_file()
    if name == "seutao-2019":
        assert shape.conv == 3 and shape.dilations == (1, 2, 4, 2) and shape.spacing and record.reverse
        assert load(tmp_path / "run" / "fold0" / "model.pt").stack == "2.5d"


def test_cached_embeddings_serve_only_the_fold_models_they_came_from(run, tmp_path):
    import shutil

    root, _, _ = run
    shutil.copytree(root / "run", tmp_path / "run")
    first = ichprep("train-series", tmp_path / "run", "--out", tmp_path / "s", *SERIES)
    again = ichprep("train-series", tmp_path / "run", "--out", tmp_path / "s", *SERIES)
    assert "fold 0: embedded" in first.stderr and "already made" in again.stderr, again.output
    (tmp_path / "run" / "fold0" / "last.pt").unlink()
    retrained = ichprep("train", root / "img", "--out", tmp_path / "run", *CNN, "--fold", "0")
    assert retrained.exit_code == 0, retrained.output
    fresh = ichprep("train-series", tmp_path / "run", "--out", tmp_path / "s", *SERIES)
    assert fresh.exit_code == 0 and "already made" not in fresh.stderr and "fold 0: embedded" in fresh.stderr, fresh.output


def test_an_option_given_explicitly_wins_over_the_recipe(phantoms, tmp_path):
    data, labels = phantoms
    done = ichprep("train", data, "--labels", labels, "--out", tmp_path / "run", "--recipe", "seutao-2019", "--scale", "tiny",
                   "--stack", "windows", "--folds", "3", "--fold", "0", "-q", "--stop-after", "1")
    assert done.exit_code == 0, done.output
    assert "  --stack windows" in done.stderr and "  --folds 3" in done.stderr


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """80 phantom slices at 16 px (about six series), converted, with their labels."""
    root = tmp_path_factory.mktemp("recipes")
    assert ichprep("synth", root / "raw", "-n", 80, "--size", 32, "-q").exit_code == 0
    assert ichprep("convert", root / "raw" / "stage_1_train_images", root / "img", "--size", 16, "-q").exit_code == 0
    return root / "img", root / "raw" / "stage_1_train.csv"

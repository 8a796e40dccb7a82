"""`predict` and `evaluate`: submission rows, shards = folder, TTA, prior correction, DICOM input, the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_run import ichprep
from ich_fixtures import (
    area_resized,
    labelled_folder,
    write_folder,
    write_shards,
)
from real_manifest import RSNA

from ichprep import LABELS, SUBTYPES
from ichprep.metrics import prior_correct, summary
from ichprep.models.apply import Inputs, predict_loader
from ichprep.models.saved import load_cnn
from ichprep.predict import Predictions, evaluate, predict, submission
from ichprep.predict.submission import CLIP
from ichprep.train import TrainConfig, train

ICHPREP = Path(sys.executable).parent / "ichprep"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch model on 32 fabricated 16 px images (trained with every flip, so every TTA view is in its
    distribution), the image folder and the same images as shards."""
    root = tmp_path_factory.mktemp("predict")
    ids, images, labels, _ = labelled_folder(root, 32, seed=5, size=16)
    write_shards(root / "shards", ids, images, None)
    train(TrainConfig(data=root / "img", out=root / "run", epochs=1, batch_size=8, workers=0, quiet=True,
                      flips=("hflip", "vflip", "transpose")), say=lambda _m: None)
    return root, ids, images, labels


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ICHPREP), *args], capture_output=True, text=True)


def test_submission_has_six_rows_per_image_in_competition_order():
    probs = np.array([[0.9, 0.1, 0.2, 0.3, 0.4, 0.5], [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]])  # LABELS order
    sub = submission(Predictions(["ID_00000000a", "00000000b"], probs))
    assert list(sub.columns) == ["ID", "Label"]
    assert sub["ID"].tolist()[:6] == [f"ID_00000000a_{s}" for s in SUBTYPES]
    assert sub["ID"].tolist()[6] == "ID_00000000b_epidural"
    # SUBTYPES order is epidural .. subdural, any: LABELS columns 1..5 then 0.
    assert sub["Label"].tolist()[:6] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.9]
    assert sub["Label"].tolist()[6:] == [1 - CLIP, CLIP, CLIP, CLIP, CLIP, CLIP]


def test_shards_and_folder_give_the_same_predictions(trained):
    root, ids, _, _ = trained
    from_folder = predict(root / "run" / "model.pt", root / "img", workers=0, quiet=True)
    from_shards = predict(root / "run" / "model.pt", root / "shards", workers=0, quiet=True)
    assert from_folder.ids == from_shards.ids == sorted(ids)
    assert np.allclose(from_folder.probs, from_shards.probs, atol=1e-6)


VIEWS = {
    "hflip": lambda images: images[:, :, ::-1],
    "vflip": lambda images: images[:, ::-1],
    "transpose": lambda images: images.transpose(0, 2, 1, 3),
}
"""Each TTA view made independently, on the stored images (N, H, W, C) before they reach torch."""


@pytest.mark.parametrize("tta", [("hflip",), ("vflip",), ("transpose",), ("hflip", "vflip", "transpose")])
def test_tta_averages_over_the_views_of_the_stored_images(trained, tmp_path, tta):
    root, ids, images, _ = trained
    model = root / "run" / "model.pt"
    plain = predict(model, root / "img", workers=0, quiet=True).probs
    seen = [plain]
    for name in tta:
        write_folder(tmp_path / name, ids, np.ascontiguousarray(VIEWS[name](images)))
        seen.append(predict(model, tmp_path / name, workers=0, quiet=True).probs)
    averaged = predict(model, root / "img", workers=0, quiet=True, tta=tta).probs
    assert np.allclose(averaged, np.mean(seen, axis=0), atol=1e-6)
    assert not np.allclose(averaged, plain, atol=1e-4)


def test_prior_correction_is_the_default_and_uses_the_rates_saved_with_the_model(trained, tmp_path):
    from dataclasses import replace

    from ichprep.models.saved import save

    root, _, _, _ = trained
    model = tmp_path / "model.pt"  # as if trained on a 1:1 sample of data 10 % positive
    save(replace(load_cnn(root / "run" / "model.pt"), train_pos_rate=[0.5] * 6, true_pos_rate=[0.1] * 6), model)
    record = load_cnn(model)
    raw = predict(model, root / "img", workers=0, quiet=True, prior_correction=False).probs
    pred = predict(model, root / "img", workers=0, quiet=True)
    expected = prior_correct(raw, np.array(record.true_pos_rate), np.array(record.train_pos_rate))
    assert np.allclose(pred.probs, expected) and np.array_equal(pred.as_learned, raw)
    assert (pred.probs < raw).all() and pred.notes == [f"probabilities corrected from the rates {model} learned (any 50.0%) "
                                                       "to the true ones (any 10.0%); --no-prior-correction: as learned"]


def test_evaluate_scores_only_labelled_images(trained, tmp_path):
    root, ids, _, labels = trained
    pred = predict(root / "run" / "model.pt", root / "img", workers=0, quiet=True)
    table = pd.DataFrame(labels[:20], columns=list(LABELS))
    table.insert(0, "SOPInstanceUID", ids[:20])
    table.to_parquet(tmp_path / "part.parquet")
    result, unlabelled = evaluate(pred, tmp_path / "part.parquet")
    assert unlabelled == 12
    rows = [pred.ids.index(i) for i in ids[:20]]
    assert result == summary(labels[:20], pred.probs[rows])


def test_cli_predict_and_evaluate_json(trained, tmp_path):
    root, ids, _, labels = trained
    model = str(root / "run" / "model.pt")
    done = ichprep("predict", model, str(root / "img"), "--out", str(tmp_path / "sub.csv"), "-q", "--workers", "0")
    assert done.exit_code == 0, done.stderr
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert len(sub) == 6 * len(ids) and sub["Label"].between(CLIP, 1 - CLIP).all()
    done = ichprep("evaluate", model, str(root / "img"), "--labels", str(root / "train.parquet"), "--json", "-q", "--workers", "0")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"weighted_log_loss", "auc", "log_loss", "accuracy"}
    assert list(result["auc"]) == list(LABELS)
    pred = predict(model, root / "img", workers=0, quiet=True)
    y = labels[[ids.index(i) for i in pred.ids]]
    assert result["weighted_log_loss"] == pytest.approx(summary(y, pred.probs)["weighted_log_loss"], rel=1e-6)


def test_cli_refuses_a_missing_model(tmp_path):
    done = run_cli("predict", str(tmp_path / "nope.pt"), str(tmp_path), "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.mark.skipif(not RSNA.exists(), reason="real RSNA sample not available")
def test_dicoms_are_rendered_with_the_models_own_settings(tmp_path):
    def ok(*args: str) -> None:
        done = ichprep(*args)
        assert done.exit_code == 0, done.stderr[-2000:]

    for images, out in (("stage_2_train_images", "train"), ("stage_2_test_images", "test")):
        ok("convert", RSNA / images, tmp_path / out, "--size", "32", "--windows", "brain,subdural,soft", "-q", "--jobs", "2")
    train(TrainConfig(data=tmp_path / "train", out=tmp_path / "run", labels=RSNA / "stage_2_train.csv", epochs=1, batch_size=8,
                      workers=0, quiet=True, val_frac=0.0), say=lambda _m: None)
    model = tmp_path / "run" / "model.pt"
    converted = predict(model, tmp_path / "test", workers=0, quiet=True)
    direct = predict(model, RSNA / "stage_2_test_images", workers=0, quiet=True)
    assert len(direct.ids) == 16 and direct.ids == converted.ids
    assert np.allclose(direct.probs, converted.probs, atol=1e-6)


def test_a_model_trained_at_another_size_sees_images_resized_on_the_device_like_opencv_would(trained, tmp_path):
    root, ids, images, _ = trained
    record = torch.load(root / "run" / "model.pt", weights_only=True)
    torch.save({**record, "size": 8}, tmp_path / "model.pt")
    on_device = predict(tmp_path / "model.pt", root / "img", workers=0, quiet=True).probs

    from torch.utils.data import DataLoader

    from ichprep.data.dataset import make_dataset
    from ichprep.store import open_store

    model = load_cnn(tmp_path / "model.pt").network(torch.device("cpu"))
    small = tmp_path / "small"
    write_folder(small, ids, area_resized(images, 8))
    store = open_store(small)
    loader = DataLoader(make_dataset(store, list(store.ids), None), batch_size=8)
    by_opencv = predict_loader(model, loader, torch.device("cpu"), Inputs(None, record["mean"], record["std"]))
    order = [store.ids.index(i) for i in ids]
    assert on_device.shape == (len(ids), len(LABELS))
    assert np.allclose(on_device, by_opencv[order][:, [LABELS.index(n) for n in record["labels"]]], atol=2e-3)


class Recorder(torch.nn.Module):
    """A network that notes the batches it is given and whether autograd was off for them."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.batches, self.inference = model, [], []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        self.inference.append(torch.is_inference_mode_enabled())
        return self.model(x)


def test_tta_is_one_forward_pass_of_the_images_and_their_mirrors_without_autograd(trained):
    root, _, _, _ = trained
    from torch.utils.data import DataLoader

    from ichprep.data.batches import normalise
    from ichprep.data.dataset import make_dataset
    from ichprep.store import open_store

    record = load_cnn(root / "run" / "model.pt")
    network = record.network(torch.device("cpu"))
    source = open_store(root / "img")
    loader = DataLoader(make_dataset(source, source.ids, None), batch_size=12)
    spy = Recorder(network)
    probs = predict_loader(spy, loader, torch.device("cpu"), Inputs.of(record), ("hflip",))
    assert spy.batches == [24, 24, 16] and all(spy.inference)
    with torch.no_grad():
        x = normalise(torch.cat([x for x, _ in loader]), record.mean, record.std)
        expected = (torch.sigmoid(network(x)) + torch.sigmoid(network(torch.flip(x, dims=[3])))) / 2
    assert np.allclose(probs, expected.double().numpy(), atol=1e-6)


@pytest.fixture(scope="module")
def raw_dicoms(tmp_path_factory):
    from ichprep.synth import IMAGES_DIR, generate

    return generate(tmp_path_factory.mktemp("raw"), n=6, seed=2, size=64) / IMAGES_DIR


def spy_on_conversions(monkeypatch) -> list[Path]:
    """The folders predict converts raw DICOMs into, each checked to exist while it is used."""
    module = sys.modules["ichprep.predict.predict"]

    seen, real = [], module.convert_dicoms

    def convert_dicoms(src, out, *args, **kwargs):
        seen.append(out)
        assert out.is_dir()
        return real(src, out, *args, **kwargs)

    monkeypatch.setattr(module, "convert_dicoms", convert_dicoms)
    return seen


def temporaries(folder: Path) -> list[Path]:
    from ichprep.predict.dicoms import TEMP_PREFIX

    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_raw_dicoms_are_converted_beside_the_submission_and_the_folder_removed(trained, raw_dicoms, tmp_path, monkeypatch):
    root = trained[0]
    monkeypatch.delenv("TMPDIR", raising=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".ichprep-predict-{dead.pid}-left").mkdir()
    (tmp_path / ".ichprep-predict-1-init").mkdir()
    seen = spy_on_conversions(monkeypatch)
    pred = predict(root / "run" / "model.pt", raw_dicoms, workers=0, quiet=True, scratch=tmp_path)
    assert len(pred.ids) >= 1 and len(seen) == 1 and seen[0].parent == tmp_path
    assert [p.name for p in temporaries(tmp_path)] == [".ichprep-predict-1-init"], "its own folder and a dead run's are gone"


def test_tmpdir_when_set_is_where_raw_dicoms_are_converted(trained, raw_dicoms, tmp_path, monkeypatch):
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    seen = spy_on_conversions(monkeypatch)
    predict(trained[0] / "run" / "model.pt", raw_dicoms, workers=0, quiet=True, scratch=tmp_path / "elsewhere")
    assert seen[0].parent == tmp_path / "tmp" and temporaries(tmp_path / "tmp") == []


def test_the_temporary_folder_is_removed_when_predict_fails(trained, raw_dicoms, tmp_path, monkeypatch):
    module = sys.modules["ichprep.predict.predict"]

    monkeypatch.delenv("TMPDIR", raising=False)
    seen = spy_on_conversions(monkeypatch)

    def broken(*args, **kwargs):
        raise RuntimeError("out of GPU memory")

    monkeypatch.setattr(module, "predict_ids", broken)
    with pytest.raises(RuntimeError):
        predict(trained[0] / "run" / "model.pt", raw_dicoms, workers=0, quiet=True, scratch=tmp_path)
    assert len(seen) == 1 and temporaries(tmp_path) == []


def test_no_room_for_the_temporary_folder_is_refused_in_one_line_before_converting(trained, raw_dicoms, tmp_path, monkeypatch):
    from ichprep.convert.run import budget

    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(budget, "free_bytes", lambda path: budget.MARGIN + 1000)
    done = ichprep("predict", trained[0] / "run" / "model.pt", raw_dicoms, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"temporary folder in {tmp_path} first and would not fit there" in done.stderr and "set TMPDIR" in done.stderr
    assert list(tmp_path.iterdir()) == []

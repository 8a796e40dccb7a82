"""A model refuses data converted with other settings than its training data, and converts raw DICOMs with its own.

A model applied to other windows, another size or crop, or another encoding still prints
probabilities; these tests hold `predict` and `evaluate` to exit 2 with one line naming what differs.
The model is untrained (built the way `train` records it): a settings check does not look at weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import ichprep

from ichprep.convert import Options, convert
from ichprep.predict import predict
from ichprep.settings import Settings
from ichprep.synth import IMAGES_DIR, generate
from ichprep.windows import Channel, fastai_channels, parse_windows
from tests.ich_fixtures import fabricate, write_folder, write_model, write_shards

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEFAULT = parse_windows("brain,subdural,bone")
BREAKS_A = tuple(float(b) for b in np.linspace(-1000, 1500, 40))
BREAKS_B = tuple(float(b) for b in np.linspace(-1000, 1600, 40))


def channels(windows: str) -> tuple[Channel, ...]:
    """The resolved channels convert would save for ``--windows`` made of names and LEVEL/WIDTH pairs."""
    return parse_windows(windows)


def made_with(folder: Path, described: tuple[Channel, ...] = DEFAULT, **values) -> Settings:
    """Rewrite ``folder``'s ichprep.json as if convert had made it with these settings."""
    settings = Settings(**{"size": 32, "crop": False, "format": "png", **values}).resolved(described)
    settings.save(folder)
    return settings


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight fabricated 32 px images, written fresh into a folder by each call of the returned function."""
    root = tmp_path_factory.mktemp("settings")
    ids, pixels, _, _ = fabricate(8, seed=3, size=32)

    def folder(name: str, fmt: str = "png") -> Path:
        return write_folder(root / name, ids, pixels, fmt)

    return folder


# (what the data differs in, the model's settings, the data's settings, the words the refusal must hold)
REFUSED = [
    (
        "windows",
        {},
        {"described": channels("brain,subdural,soft")},
        "--windows brain 40/80, subdural 80/200, bone 600/2800 -> brain 40/80, subdural 80/200, soft 40/380",
    ),
    ("one level/width", {}, {"described": channels("40/90,subdural,bone")},
     "--windows brain 40/80, subdural 80/200, bone 600/2800 -> 40/90, subdural 80/200, bone 600/2800)"),
    (
        "fastai breakpoints",
        {"described": fastai_channels(BREAKS_A)},
        {"described": fastai_channels(BREAKS_B)},
        "--windows brain 40/80, fastai_subdural 100/254, freqhist (40 breakpoints -1000..1500",
    ),
    ("size", {}, {"size": 48}, "size 32 -> 48"),
    ("crop", {}, {"crop": True}, "crop False -> True"),
    ("jpg files for a png model", {}, {"format": "jpg"}, "encoding lossless -> JPEG quality 95"),
    ("jpeg shards for a png model", {}, {"format": "hdf5", "codec": "jpeg"}, "encoding lossless -> JPEG quality 95"),
    ("another JPEG quality", {"format": "jpg"}, {"format": "jpg", "quality": 90}, "encoding JPEG quality 95 -> JPEG quality 90"),
    ("png files for a jpg model", {"format": "jpg"}, {}, "encoding JPEG quality 95 -> lossless"),
]


@pytest.mark.parametrize("case, trained, data, named", REFUSED, ids=[case[0] for case in REFUSED])
def test_data_made_with_other_settings_is_refused_naming_the_setting(images, tmp_path, case, trained, data, named):
    model = write_model(tmp_path / "run" / "model.pt", _settings_folder(tmp_path / "trained", trained))
    folder = images(f"data-{case.replace(' ', '-')}")
    made_with(folder, **data)
    for command in (
        ["predict", model, folder, "--out", tmp_path / "sub.csv"],
        ["evaluate", model, folder, "--labels", tmp_path / "none.csv"],
    ):
        if command[0] == "evaluate":
            (tmp_path / "none.csv").write_text("ID,Label\n")
        done = ichprep(*command, "-q", "--workers", "0")
        assert done.exit_code == 2, done.output
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("ichprep: error: "), done.stderr
        assert named in done.stderr, done.stderr
        assert "give predict the DICOMs" in done.stderr
    assert not (tmp_path / "sub.csv").exists()


def test_a_window_refusal_shows_each_value_once(images, tmp_path):
    trained = _settings_folder(tmp_path / "trained", {"described": channels("40/80,80/200,600/2800")})
    model = write_model(tmp_path / "run" / "model.pt", trained)
    folder = images("data-numbers")
    made_with(folder, channels("40/90,80/200,600/2800"))
    done = ichprep("predict", model, folder, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 2 and done.stderr.count("\n") == 1
    assert "(--windows 40/80, 80/200, 600/2800 -> 40/90, 80/200, 600/2800)" in done.stderr, done.stderr
    assert done.stderr.count("40/90") == 1 and done.stderr.count("40/80") == 1


def _settings_folder(folder: Path, values: dict) -> Path:
    """A folder holding only an ichprep.json, for a model to take its settings from."""
    folder.mkdir(parents=True, exist_ok=True)
    made_with(folder, **values)
    return folder


def test_every_difference_is_named_in_the_one_line(images, tmp_path):
    model = write_model(tmp_path / "run" / "model.pt", _settings_folder(tmp_path / "trained", {}))
    folder = images("data-three")
    made_with(folder, channels("brain,subdural,soft"), size=64, crop=True)
    done = ichprep("predict", model, folder, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 2 and done.stderr.count("\n") == 1
    assert "--windows brain 40/80" in done.stderr and "size 32 -> 64" in done.stderr and "crop False -> True" in done.stderr


def test_png_files_and_lossless_shards_of_the_same_settings_are_accepted(images, tmp_path):
    model = write_model(tmp_path / "run" / "model.pt", _settings_folder(tmp_path / "trained", {}))
    folder = images("same-png")
    ids, pixels, _, _ = fabricate(8, seed=3, size=32)
    shards = write_shards(tmp_path / "shards", ids, pixels, None, codec="gzip")
    made_with(shards, format="hdf5", codec="gzip")
    for data in (folder, shards):
        done = ichprep("predict", model, data, "--out", tmp_path / f"{data.name}.csv", "-q", "--workers", "0")
        assert done.exit_code == 0, done.output
        assert done.stdout.strip() == f"8 images -> {tmp_path / f'{data.name}.csv'}"
    assert (tmp_path / "same-png.csv").read_text() == (tmp_path / "shards.csv").read_text()


def test_jpg_files_and_jpeg_shards_of_one_quality_are_accepted(images, tmp_path):
    model = write_model(tmp_path / "run" / "model.pt", _settings_folder(tmp_path / "trained", {"format": "jpg"}))
    ids, pixels, _, _ = fabricate(8, seed=3, size=32)
    shards = write_shards(tmp_path / "shards", ids, pixels, None, codec="jpeg")
    made_with(shards, format="hdf5", codec="jpeg")
    done = ichprep("predict", model, shards, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 0, done.output


def test_a_model_with_neighbours_needs_the_datas_series_positions(images, tmp_path):
    model = write_model(tmp_path / "run" / "model.pt", _settings_folder(tmp_path / "trained", {}), neighbours=1)
    folder = images("no-manifest")
    done = ichprep("predict", model, folder, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 2 and done.stderr.count("\n") == 1
    assert "stacks 1 neighbouring slice(s)" in done.stderr and "manifest.parquet" in done.stderr


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Two sets of phantom DICOMs (64 px, different seeds: other patients, other intensities)."""
    root = tmp_path_factory.mktemp("phantoms")
    return [generate(root / f"set{seed}", n=8, seed=seed, size=64) / IMAGES_DIR for seed in (1, 2)]


@pytest.mark.parametrize("windows", ["brain,subdural,bone", "fastai"])
def test_raw_dicoms_are_converted_with_the_models_own_settings(phantoms, tmp_path, windows):
    trained_on, new = phantoms
    convert(trained_on, tmp_path / "train", Settings(windows=windows, size=32), Options(jobs=1, quiet=True))
    model = write_model(tmp_path / "run" / "model.pt", tmp_path / "train")
    # The model's settings, fastai's breakpoints estimated from the training DICOMs included, converted by hand:
    record = json.loads((tmp_path / "train" / "ichprep.json").read_text())
    convert(new, tmp_path / "by-hand", Settings.from_dict(record), Options(jobs=1, quiet=True))

    direct = predict(model, new, workers=0, quiet=True)
    by_hand = predict(model, tmp_path / "by-hand", workers=0, quiet=True)
    assert len(direct.ids) == 8 and direct.ids == by_hand.ids
    assert np.allclose(direct.probs, by_hand.probs, atol=1e-6)
    done = ichprep("predict", model, new, "--out", tmp_path / "sub.csv", "-q", "--workers", "0")
    assert done.exit_code == 0, done.output
    assert len((tmp_path / "sub.csv").read_text().splitlines()) == 1 + 6 * 8


def test_fastai_breakpoints_of_new_dicoms_differ_from_the_models(phantoms, tmp_path):
    """The check above means something: converting the new DICOMs on their own gives other breakpoints."""
    trained_on, new = phantoms
    convert(trained_on, tmp_path / "a", Settings(windows="fastai", size=32), Options(jobs=1, quiet=True))
    convert(new, tmp_path / "b", Settings(windows="fastai", size=32), Options(jobs=1, quiet=True))
    assert Settings.load(tmp_path / "a").pixel_differences(Settings.load(tmp_path / "b"))[0].startswith("--windows")

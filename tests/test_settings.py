"""Settings: ``--windows`` parsed once into channels, and ``ichprep.json`` written byte for byte as before.

The record below is what a conversion with ``--windows " Brain , -600/1500,30.5/100.25"
--size 40 --no-crop --format hdf5`` wrote before windows became one type (channels held as dicts):
a folder made then must load, compare equal to the same request made now, and save unchanged.
"""

from __future__ import annotations

import json

import pytest

from ichprep import __version__
from ichprep.errors import IchprepError
from ichprep.settings import Settings
from ichprep.windows import FreqHist, Window, fastai_channels, parse_windows

SAVED = """{
  "windows": "brain,-600/1500,30.5/100.25",
  "size": 40,
  "crop": false,
  "format": "hdf5",
  "quality": 95,
  "codec": "zstd",
  "channels": [
    {
      "name": "brain",
      "kind": "window",
      "level": 40,
      "width": 80
    },
    {
      "name": "-600/1500",
      "kind": "window",
      "level": -600.0,
      "width": 1500.0
    },
    {
      "name": "30.5/100.25",
      "kind": "window",
      "level": 30.5,
      "width": 100.25
    }
  ],
  "ichprep_version": "VERSION"
}""".replace("VERSION", __version__)


def test_a_request_is_saved_as_convert_always_wrote_it(tmp_path):
    Settings(windows=" Brain , -600/1500,30.5/100.25", size=40, crop=False, format="hdf5", quality=95).save(tmp_path)
    assert (tmp_path / "ichprep.json").read_text() == SAVED


def test_a_saved_record_loads_as_channels_and_saves_again_unchanged(tmp_path):
    (tmp_path / "ichprep.json").write_text(SAVED)
    loaded = Settings.load(tmp_path)
    assert loaded.channels == (Window("brain", 40, 80), Window("-600/1500", -600.0, 1500.0), Window("30.5/100.25", 30.5, 100.25))
    assert loaded.output_differences(Settings(windows="brain,-600/1500,30.5/100.25", size=40, crop=False, format="hdf5")) == []
    (tmp_path / "again").mkdir()
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "ichprep.json").read_text() == SAVED


def test_windows_are_parsed_once_into_channels_and_named_as_the_record_keeps_them():
    settings = Settings(windows=" BONE ,40/80")
    assert settings.channels == parse_windows("bone,40/80") and settings.windows == "bone,40/80"
    fastai = Settings(windows=" FastAI ")
    assert fastai.windows == "fastai" and fastai.channels == fastai_channels(())
    sampled = fastai.resolved(fastai_channels([-1000.0, 0.0, 100.0]))
    assert sampled.windows == "fastai" and sampled.channels[2] == FreqHist("freqhist", (-1000.0, 0.0, 100.0))


def test_given_channels_win_over_the_windows_text():
    settings = Settings(windows="brain", channels=parse_windows("bone"))
    assert settings.windows == "bone" and settings.channels == parse_windows("bone")


@pytest.mark.parametrize("windows", ["gif", "40/0", "brain,subdural,bone,soft,stroke"])
def test_bad_windows_are_refused_where_the_settings_are_made(windows):
    with pytest.raises(IchprepError, match="^--windows: ") as info:
        Settings(windows=windows)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt, windows, fine", [("png", "brain,subdural", False), ("jpg", "brain,subdural,bone,soft", False),
                                                ("png", "brain", True), ("jpg", "fastai", True), ("hdf5", "brain,subdural", True)])
def test_image_files_hold_one_or_three_channels(fmt, windows, fine):
    settings = Settings(windows=windows, format=fmt)
    if fine:
        assert settings.check() is settings
    else:
        with pytest.raises(IchprepError, match=f"^{fmt} images hold 1 or 3 channels"):
            settings.check()


def test_a_damaged_record_is_named_as_damaged(tmp_path):
    record = json.loads(SAVED)
    del record["channels"][0]["level"]
    (tmp_path / "ichprep.json").write_text(json.dumps(record))
    with pytest.raises(IchprepError, match="is damaged"):
        Settings.load(tmp_path)

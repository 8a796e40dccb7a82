"""Fitting a run to its disk: the quality --max-disk picks, measured, and the one-line refusals with advice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_run import ichprep

from ichprep.convert import Options, convert
from ichprep.convert.run import budget, fit, ladder
from ichprep.settings import Settings
from ichprep.synth import generate

SIZE = 256
"""JPEG files of 256 px are tens of KB: file-system blocks (4 KB) do not hide the differences between qualities."""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), n=40, seed=11, size=256) / "stage_1_train_images"


@pytest.fixture(scope="module")
def measured(images, tmp_path_factory):
    """The dry run's ladder of JPEG files at 256 px."""
    out = tmp_path_factory.mktemp("dry") / "out"
    return convert(images, out, Settings(format="jpg", size=SIZE), Options(dry_run=True, jobs=1, quiet=True)).fitted.ladder


def convert_cli(images, out, *args):
    return ichprep("convert", images, out, "--size", SIZE, "--jobs", "1", "-q", *args)


def refused_cleanly(res, out) -> None:
    assert res.exit_code == 2, res.output
    assert res.stdout == "" and res.stderr.count("\n") == 1 and res.stderr.startswith("ichprep: error: ")
    assert not out.exists()


def test_the_ladder_is_measured_highest_quality_first_smaller_and_worse_as_it_goes_down(measured):
    qualities = [r.quality for r in measured.rungs]
    assert qualities == sorted(ladder.LADDER, reverse=True) and measured.images == 40 and measured.sampled == 40
    assert measured.names == ("brain", "subdural", "bone")
    top, bottom = measured.rung(95), measured.rung(50)
    assert top.per_image > 1.5 * bottom.per_image
    assert all(t > b for t, b in zip(top.psnr, bottom.psnr)) and all(30 < p < 60 for p in top.psnr)


def test_the_sample_is_seeded_and_spread_over_the_inputs():
    items = list(range(1000))
    assert ladder.sample(items) == ladder.sample(items) and len(ladder.sample(items)) == ladder.SAMPLE
    assert list(ladder.sample(items)) == sorted(ladder.sample(items)) and max(ladder.sample(items)) > 500
    assert ladder.sample(items[:10]) == tuple(items[:10])


def test_max_disk_well_under_the_q95_size_picks_a_quality_that_fits_and_uses_most_of_the_budget(images, measured, tmp_path):
    limit = int(0.6 * measured.total(measured.rung(95)))
    said = []
    out = tmp_path / "out"
    result = convert(images, out, Settings(format="jpg", size=SIZE), Options(max_disk=limit, jobs=1, quiet=True), say=said.append)
    chosen = measured.best(limit, ladder.MIN_QUALITY)
    assert result.converted == 40 and result.settings.quality == chosen.quality < 95
    used = budget.disk_usage(out)
    assert 0.6 * limit < used <= limit, (used, limit)
    assert said[0].startswith(f"--max-disk {budget.human(limit)} picks JPEG quality {chosen.quality}: estimated ")
    assert "brain" in said[0] and "bone" in said[0] and " dB" in said[0]
    assert json.loads((out / "ichprep.json").read_text())["quality"] == chosen.quality
    assert set(pd.read_parquet(out / "manifest.parquet")["quality"]) == {chosen.quality}
    again = convert(images, out, Settings(format="jpg", size=SIZE), Options(max_disk=limit, jobs=1, quiet=True))
    assert again.skipped == 40 and again.settings.quality == chosen.quality, "a re-run resumes with the quality picked"


def test_the_cli_says_the_quality_it_picked_for_shards_of_jpeg_bytes(images, measured, tmp_path):
    out = tmp_path / "out"
    res = convert_cli(images, out, "--format", "hdf5", "--codec", "jpeg", "--max-disk", int(0.6 * measured.total(measured.rung(95))))
    assert res.exit_code == 0, res.output
    quality = json.loads((out / "ichprep.json").read_text())["quality"]
    assert quality < 95 and f"picks JPEG quality {quality}: estimated" in res.stderr


def test_an_explicit_quality_that_does_not_fit_is_refused_naming_one_that_does(images, measured, tmp_path):
    limit = int(0.6 * measured.total(measured.rung(95)))
    res = convert_cli(images, tmp_path / "out", "--format", "jpg", "--quality", 95, "--max-disk", limit)
    refused_cleanly(res, tmp_path / "out")
    assert "would not fit" in res.stderr and f"--quality {measured.best(limit).quality} (" in res.stderr
    assert "--size " in res.stderr and "--ids with at most" in res.stderr


def test_a_budget_below_the_lowest_quality_allowed_is_refused(images, measured, tmp_path):
    floor = measured.rung(ladder.MIN_QUALITY)
    limit = int(0.97 * measured.needs(floor))
    res = convert_cli(images, tmp_path / "out", "--format", "jpg", "--max-disk", limit)
    refused_cleanly(res, tmp_path / "out")
    lower = measured.best(limit)
    assert f"is below JPEG quality {ladder.MIN_QUALITY} (--min-quality)" in res.stderr
    assert f"--min-quality {lower.quality} (" in res.stderr and "--size " in res.stderr
    allowed = convert_cli(images, tmp_path / "out", "--format", "jpg", "--max-disk", limit, "--min-quality", lower.quality)
    assert allowed.exit_code == 0 and f"picks JPEG quality {lower.quality}:" in allowed.stderr


def test_a_lossless_format_over_budget_is_refused_pointing_to_jpeg(images, measured, tmp_path):
    limit = int(0.6 * measured.total(measured.rung(95)))
    res = convert_cli(images, tmp_path / "out", "--max-disk", limit)
    refused_cleanly(res, tmp_path / "out")
    assert f"--format jpg with --max-disk, which picks quality {measured.best(limit).quality} (" in res.stderr


def test_without_max_disk_the_free_space_is_the_budget(images, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "free_bytes", lambda path: budget.MARGIN + 200_000)
    res = convert_cli(images, tmp_path / "out", "--format", "jpg")
    refused_cleanly(res, tmp_path / "out")
    assert "would not fit" in res.stderr and "--quality " in res.stderr


def test_a_small_run_on_a_roomy_disk_is_not_sampled(images, tmp_path, monkeypatch):
    def no_sample(*args, **kwargs):
        raise AssertionError("sampled")

    monkeypatch.setattr(ladder, "measure", no_sample)
    monkeypatch.setattr(budget, "estimate", no_sample)
    result = convert(images, tmp_path / "out", Settings(format="jpg", size=64), Options(jobs=1, quiet=True))
    assert result.converted == 40 and result.settings.quality == 95


def test_the_dry_run_prints_the_ladder_and_creates_nothing(images, measured, tmp_path):
    out = tmp_path / "out"
    res = convert_cli(images, out, "--format", "jpg", "--dry-run", "--max-disk", int(0.6 * measured.total(measured.rung(95))))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["quality"])
    assert lines[0].startswith("estimated output")
    assert header.split() == ["quality", "KB/image", "total", "brain", "dB", "subdural", "dB", "bone", "dB", "fits"]
    rows = {int(line.split()[0]): line.split() for line in lines if line.strip()[:2].isdigit()}
    assert sorted(rows) == sorted(ladder.LADDER)
    assert rows[95][-1] == "no" and rows[50][-1] == "yes"
    assert float(rows[95][1]) == pytest.approx(measured.rung(95).per_image / 1000, abs=0.11)
    assert lines[-1].startswith("--max-disk ") and " picks JPEG quality " in lines[-1]
    assert not out.exists()


def test_a_png_dry_run_shows_the_jpeg_ladder_as_the_alternative(images, tmp_path):
    res = convert_cli(images, tmp_path / "out", "--dry-run")
    assert res.exit_code == 0 and "with --format jpg" in res.stdout and "  95  " in res.stdout


def test_advice_names_a_smaller_size_and_how_many_ids_fit(measured):
    text = fit.advice(measured, 1000.0, 20_000, Settings(format="jpg", size=256), "quality")
    assert "--size 176 (about 47% of the bytes per image)" in text and "--ids with at most 20 of the 40 images" in text


def test_advice_on_a_disk_with_less_than_the_margin_free_says_to_free_space(measured):
    text = fit.advice(measured, 1000.0, -5_000_000, Settings(format="jpg", size=256), "quality")
    assert text == "free some space or choose another output folder"


def test_the_cli_default_of_min_quality_is_the_librarys():
    import inspect

    from ichprep.cli.convert_cmd import convert_cmd as command

    assert inspect.signature(command).parameters["min_quality"].default.default == ladder.MIN_QUALITY

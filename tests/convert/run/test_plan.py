"""Planning a run: the fastai preset's breakpoints sampled from the inputs, reused from OUT's run, or kept as given; the dry run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from ichprep.convert import Options, convert
from ichprep.convert.run import plan
from ichprep.convert.sources import Input
from ichprep.errors import IchprepError
from ichprep.settings import Settings
from ichprep.synth import generate
from ichprep.windows import fastai_channels, freqhist_breaks, unsampled


class Listed:
    """A source of DICOM bytes by id that records what it was asked to read."""

    name = "listed"

    def __init__(self, data: dict[str, bytes | Exception]) -> None:
        self.data = data
        self.asked: list[str] = []

    def read(self, items: Sequence[Input]) -> Iterator[tuple[Input, bytes | Exception]]:
        for item in items:
            self.asked.append(item.id)
            yield item, self.data[item.id]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), n=24, seed=5, size=128) / "stage_1_train_images"


def inputs(ids: Sequence[str]) -> list[Input]:
    return [Input(i, f"{i}.dcm", None) for i in ids]


def test_settings_with_every_breakpoint_known_are_kept_and_nothing_is_read():
    given = Settings(windows="fastai").resolved(fastai_channels([-1000.0, 0.0, 100.0]))
    source = Listed({})
    assert plan.resolve_fastai(given, source, inputs(["a"]), None) is given
    plain = Settings(windows="brain,bone")
    assert plan.resolve_fastai(plain, source, inputs(["a"]), None) is plain and source.asked == []


def test_a_resumed_run_reuses_its_folders_breakpoints():
    previous = Settings(windows="fastai", size=64).resolved(fastai_channels([-500.0, 20.0, 900.0]))
    source = Listed({})
    resolved = plan.resolve_fastai(Settings(windows="fastai", size=64), source, inputs(["a"]), previous)
    assert resolved.channels == previous.channels and source.asked == []


def test_breakpoints_are_fastais_bins_of_the_readable_sample_slices(make_ct):
    rng = np.random.default_rng(5)
    raws = [rng.integers(0, 2000, (16, 16)).astype(np.int16) for _ in range(3)]
    source = Listed({"a": make_ct(raws[0]), "b": ValueError("unreadable"), "c": make_ct(raws[1]), "d": b"not a dicom",
                     "e": make_ct(raws[2])})
    resolved = plan.resolve_fastai(Settings(windows="fastai"), source, inputs("abcde"), None)
    pooled = np.concatenate([(r.astype(np.float64) - 1024.0)[::2, ::2].ravel() for r in raws])
    assert not unsampled(resolved.channels) and resolved.windows == "fastai"
    np.testing.assert_array_equal(resolved.channels[2].breaks, freqhist_breaks(pooled))


def test_the_sample_is_spread_evenly_over_the_inputs(make_ct):
    ids = [f"s{i:03d}" for i in range(100)]
    source = Listed({i: make_ct(np.zeros((8, 8), np.int16) + k) for k, i in enumerate(ids)})
    plan.sample_breaks(source, inputs(ids), n=5)
    assert source.asked == ["s000", "s024", "s049", "s074", "s099"]


def test_a_stream_and_a_sample_with_nothing_readable_are_refused():
    with pytest.raises(IchprepError, match="is a stream"):
        plan.resolve_fastai(Settings(windows="fastai"), Listed({}), iter(inputs(["a"])), None)
    with pytest.raises(IchprepError, match="at least one readable slice"):
        plan.resolve_fastai(Settings(windows="fastai"), Listed({"a": b"junk"}), inputs(["a"]), None)


def test_dry_run_estimates_from_a_real_sample_and_converts_nothing(images, tmp_path):
    out = tmp_path / "out"
    result = convert(images, out, Settings(size=64), Options(dry_run=True, jobs=1, quiet=True))
    assert result.converted == 0 and not list(out.glob("*.png"))
    real = convert(images, tmp_path / "real", Settings(size=64), Options(jobs=1, quiet=True))
    actual = sum(p.stat().st_blocks * 512 for p in (tmp_path / "real").glob("*.png")) / real.converted
    assert result.estimate.images == 24
    assert result.estimate.per_image == pytest.approx(actual, rel=0.25)

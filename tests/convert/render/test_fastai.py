"""Resolving the fastai preset: breakpoints sampled from the inputs, reused from OUT's run, or kept as given."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from ichprep.convert.render import fastai
from ichprep.convert.sources import Input
from ichprep.errors import IchprepError
from ichprep.settings import Settings
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


def inputs(ids: Sequence[str]) -> list[Input]:
    return [Input(i, f"{i}.dcm", None) for i in ids]


def test_settings_with_every_breakpoint_known_are_kept_and_nothing_is_read():
    given = Settings(windows="fastai").resolved(fastai_channels([-1000.0, 0.0, 100.0]))
    source = Listed({})
    assert fastai.resolve(given, source, inputs(["a"]), None) is given
    plain = Settings(windows="brain,bone")
    assert fastai.resolve(plain, source, inputs(["a"]), None) is plain and source.asked == []


def test_a_resumed_run_reuses_its_folders_breakpoints():
    previous = Settings(windows="fastai", size=64).resolved(fastai_channels([-500.0, 20.0, 900.0]))
    source = Listed({})
    resolved = fastai.resolve(Settings(windows="fastai", size=64), source, inputs(["a"]), previous)
    assert resolved.channels == previous.channels and source.asked == []


def test_breakpoints_are_fastais_bins_of_the_readable_sample_slices(make_ct):
    rng = np.random.default_rng(5)
    raws = [rng.integers(0, 2000, (16, 16)).astype(np.int16) for _ in range(3)]
    source = Listed({"a": make_ct(raws[0]), "b": ValueError("unreadable"), "c": make_ct(raws[1]), "d": b"not a dicom",
                     "e": make_ct(raws[2])})
    resolved = fastai.resolve(Settings(windows="fastai"), source, inputs("abcde"), None)
    pooled = np.concatenate([(r.astype(np.float64) - 1024.0)[::2, ::2].ravel() for r in raws])
    assert not unsampled(resolved.channels) and resolved.windows == "fastai"
    np.testing.assert_array_equal(resolved.channels[2].breaks, freqhist_breaks(pooled))


def test_the_sample_is_spread_evenly_over_the_inputs(make_ct):
    ids = [f"s{i:03d}" for i in range(100)]
    source = Listed({i: make_ct(np.zeros((8, 8), np.int16) + k) for k, i in enumerate(ids)})
    fastai.sample_breaks(source, inputs(ids), n=5)
    assert source.asked == ["s000", "s024", "s049", "s074", "s099"]


def test_a_stream_and_a_sample_with_nothing_readable_are_refused():
    with pytest.raises(IchprepError, match="is a stream"):
        fastai.resolve(Settings(windows="fastai"), Listed({}), iter(inputs(["a"])), None)
    with pytest.raises(IchprepError, match="at least one readable slice"):
        fastai.resolve(Settings(windows="fastai"), Listed({"a": b"junk"}), inputs(["a"]), None)

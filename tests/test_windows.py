"""Window presets, ``--windows`` parsing and the HU -> grey level math, against plain-numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from ichprep.windows import (
    FASTAI,
    FreqHist,
    Window,
    channel_stack,
    fastai_channels,
    fixed16_to_uint8,
    freqhist_breaks,
    from_description,
    is_fastai,
    parse_windows,
    spec_of,
    to_fixed16,
    to_uint8,
    unsampled,
)

HU = np.concatenate([np.arange(-1100.0, 3100.0, 0.25), [-32768.0, -1024.0, 0.0, 40.0, 80.0, 3071.0, 32767.0]])


def reference_unit(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip((np.asarray(hu, dtype=np.float64) - (level - width / 2)) / width, 0.0, 1.0)


def fastai_freqhist_bins(values: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """fastai's ``Tensor.freqhist_bins`` transcribed to numpy, in torch's float32 arithmetic.

    ``t = cat([tensor([0.001]), arange(n_bins).float()/n_bins + 1/2/n_bins, tensor([0.999])])``,
    ``t = (len(imsd) * t).long()``, ``imsd[t].unique()``: every step is float32.
    """
    ordered = np.sort(np.asarray(values, dtype=np.float32).ravel())
    middle = np.arange(n_bins, dtype=np.float32) / np.float32(n_bins) + np.float32(1 / 2 / n_bins)
    t = np.concatenate([np.array([0.001], np.float32), middle.astype(np.float32), np.array([0.999], np.float32)])
    ranks = (np.float32(len(ordered)) * t).astype(np.float32).astype(np.int64)
    return np.unique(ordered[ranks]).astype(np.float64)


def test_default_windows_are_brain_subdural_bone_as_level_width():
    windows = parse_windows("brain,subdural,bone")
    assert [(w.name, w.level, w.width) for w in windows] == [("brain", 40, 80), ("subdural", 80, 200), ("bone", 600, 2800)]


@pytest.mark.parametrize(
    "name, level, width",
    [("brain", 40, 80), ("subdural", 80, 200), ("bone", 600, 2800), ("stroke", 32, 8), ("fastai_subdural", 100, 254)],
)
def test_named_window_has_the_spec_level_and_width(name, level, width):
    (window,) = parse_windows(name)
    assert (window.level, window.width) == (level, width)


def test_soft_window_is_a_soft_tissue_window_centred_at_40():
    (window,) = parse_windows("soft")
    assert window.level == 40 and 350 <= window.width <= 400


def test_level_width_pairs_mix_with_names_and_keep_their_order():
    windows = parse_windows(" BRAIN , -600/1500,30.5/100.25 ")
    assert [(w.level, w.width) for w in windows] == [(40, 80), (-600, 1500), (30.5, 100.25)]


def test_fastai_preset_is_its_channels_with_breakpoints_still_to_sample():
    channels = parse_windows(" FastAI ")
    assert channels == fastai_channels(()) == parse_windows("fastai")
    assert unsampled(channels) and is_fastai(channels) and spec_of(channels) == FASTAI
    assert not unsampled(fastai_channels([-1000.0, 0.0])) and is_fastai(fastai_channels([-1000.0, 0.0]))


def test_spec_of_names_the_channels_as_the_settings_file_records_them():
    assert spec_of(parse_windows(" BRAIN , -600/1500,30.5/100.25 ")) == "brain,-600/1500,30.5/100.25"
    assert not is_fastai(parse_windows("brain")) and not unsampled(parse_windows("brain"))


@pytest.mark.parametrize(
    "spec", ["", "gif", "40", "40/", "/80", "40/0", "40/-80", "brain,,bone", "brain;bone", "1,2,3", "brain,subdural,bone,soft,stroke"]
)
def test_bad_window_specs_raise_value_error_naming_the_problem(spec):
    with pytest.raises(ValueError) as info:
        parse_windows(spec)
    assert str(info.value).strip()


@pytest.mark.parametrize("level, width", [(40, 80), (80, 200), (600, 2800), (32, 8), (100, 254), (-600, 1500)])
def test_window_unit_is_the_clipped_linear_formula(level, width):
    np.testing.assert_array_equal(Window("w", level, width).unit(HU), reference_unit(HU, level, width))


def test_to_uint8_rounds_exact_halves_up():
    k = np.arange(255)
    unit = (k + 0.5) / 255.0
    exact = unit * 255.0 == k + 0.5
    assert exact.sum() > 100
    np.testing.assert_array_equal(to_uint8(unit[exact]), (k[exact] + 1).astype(np.uint8))


def test_to_uint8_matches_floor_plus_half_on_the_unit_interval():
    unit = np.linspace(0.0, 1.0, 100_003)
    np.testing.assert_array_equal(to_uint8(unit), np.floor(unit * 255.0 + 0.5).astype(np.uint8))
    assert to_uint8(np.array([0.0, 1.0])).tolist() == [0, 255]


def test_fixed_point_round_trip_is_the_uint8_rule_within_one_level():
    unit = np.linspace(0.0, 1.0, 100_003)
    back = fixed16_to_uint8(to_fixed16(unit)).astype(int)
    reference = np.floor(unit * 255.0 + 0.5).astype(int)
    assert np.abs(back - reference).max() <= 1
    assert np.mean(back == reference) > 0.99


def test_channel_stack_puts_channels_last_in_the_given_order():
    channels = parse_windows("bone,brain")
    hu = HU[: HU.size // 8 * 8]
    stacked = channel_stack(channels, hu.reshape(-1, 8))
    assert stacked.shape == (hu.size // 8, 8, 2)
    np.testing.assert_array_equal(stacked[..., 0], reference_unit(hu, 600, 2800).reshape(-1, 8))
    np.testing.assert_array_equal(stacked[..., 1], reference_unit(hu, 40, 80).reshape(-1, 8))


@pytest.mark.parametrize("n", [240, 1000, 4096, 12_345, 2_097_152])
def test_freqhist_breaks_are_fastais_freqhist_bins(n):
    rng = np.random.default_rng(n)
    values = np.round(rng.normal(0.0, 600.0, n))
    np.testing.assert_array_equal(freqhist_breaks(values), fastai_freqhist_bins(values))


def test_freqhist_breaks_rank_exactly_on_distinct_values():
    values = np.arange(240.0)[::-1]
    np.testing.assert_array_equal(freqhist_breaks(values), fastai_freqhist_bins(values))


def test_freqhist_channel_interpolates_the_breakpoints_to_the_unit_interval():
    breaks = (-1000.0, -50.0, 0.0, 30.0, 45.0, 400.0, 2000.0)
    channel = FreqHist("freqhist", breaks)
    expected = np.interp(HU, breaks, np.linspace(0.0, 1.0, len(breaks)))
    np.testing.assert_array_equal(channel.unit(HU), expected)


def test_fastai_channels_are_brain_fastai_subdural_and_freqhist():
    channels = fastai_channels([-1000, 0, 100])
    assert [c.name for c in channels] == ["brain", "fastai_subdural", "freqhist"]
    assert (channels[1].level, channels[1].width) == (100, 254)
    assert channels[2].breaks == (-1000.0, 0.0, 100.0)


def test_descriptions_give_the_same_channels_back():
    channels = parse_windows("brain,-600/1500") + fastai_channels([-1000.0, 0.0, 100.0])[2:]
    assert from_description([c.describe() for c in channels]) == channels


def test_descriptions_keep_their_numbers_so_a_saved_record_is_saved_again_unchanged():
    described = [{"name": "brain", "kind": "window", "level": 40, "width": 80},
                 {"name": "-600/1500", "kind": "window", "level": -600.0, "width": 1500.0}]
    assert [c.describe() for c in from_description(described)] == described
    assert [repr(c.describe()["level"]) for c in from_description(described)] == ["40", "-600.0"]


def test_summaries_name_each_channel_once():
    channels = parse_windows("brain,40/90") + fastai_channels([-1000.0, 0.0, 100.0])[2:]
    assert [c.summary() for c in channels] == ["brain 40/80", "40/90", "freqhist (3 breakpoints -1000..100, sum -900)"]

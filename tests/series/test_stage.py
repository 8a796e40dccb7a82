"""The second stage's training series: augmented as the 1st place's were (every other slice, windows, backwards)."""

import numpy as np

from ichprep.series.stage import augmented


def test_the_augmented_series_is_every_other_slice_a_window_and_backwards_each_as_often_as_drawn():
    rng = np.random.default_rng(0)
    seen = [augmented(40, rng, ("reverse", "skip"), crop=8) for _ in range(400)]
    assert all(len(rows) == 8 for rows in seen)
    steps = [int(np.diff(rows)[0]) for rows in seen]
    assert set(steps) == {1, -1, 2, -2}  # whole or every other slice, forwards or backwards
    assert all(np.all(np.diff(rows) == rows[1] - rows[0]) for rows in seen)  # a window keeps its slices in order
    backwards = np.mean([s < 0 for s in steps])
    skipped = np.mean([abs(s) == 2 for s in steps])
    assert 0.4 < backwards < 0.6 and 0.4 < skipped < 0.6


def test_short_series_are_never_thinned_and_nothing_asked_changes_nothing():
    rng = np.random.default_rng(1)
    assert all(len(augmented(10, rng, ("skip",), crop=0)) == 10 for _ in range(50))
    assert np.array_equal(augmented(30, rng, (), crop=0), np.arange(30))
    assert np.array_equal(augmented(5, rng, (), crop=24), np.arange(5))

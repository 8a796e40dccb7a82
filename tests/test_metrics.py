"""The competition metric and the per-label diagnostics, checked against hand arithmetic."""

import math

import numpy as np
import pytest

from ichprep import LABELS
from ichprep.metrics import (
    LABEL_WEIGHTS,
    accuracy_per_label,
    auc,
    log_loss_per_label,
    prior_correct,
    summary,
    weighted_log_loss,
)


def test_weights_count_any_twice():
    assert LABELS[0] == "any"
    assert LABEL_WEIGHTS == (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_weighted_log_loss_matches_hand_arithmetic():
    # Two images, six labels (any first).
    y = np.array([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    p = np.array([[0.8, 0.5, 0.5, 0.5, 0.5, 0.5], [0.1, 0.5, 0.5, 0.5, 0.5, 0.5]])
    # Image 1: any -ln(0.8) weight 2; five others -ln(0.5) each weight 1.
    # Image 2: any -ln(0.9) weight 2; five others -ln(0.5).
    # Sum = 2 ln(1/0.8) + 2 ln(1/0.9) + 10 ln 2; divide by N * sum(w) = 2 * 7 = 14.
    expected = (2 * math.log(1 / 0.8) + 2 * math.log(1 / 0.9) + 10 * math.log(2)) / 14
    assert weighted_log_loss(y, p) == pytest.approx(expected, rel=1e-12)


def test_log_loss_is_clipped_not_infinite():
    y = np.array([[1, 1, 1, 1, 1, 1]])
    p = np.zeros((1, 6))
    # Every pair costs -ln(1e-7) = 16.118...; the weighted mean of equal losses is that loss.
    assert weighted_log_loss(y, p) == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_log_loss_per_label_averages_over_images():
    y = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    p = np.full((2, 6), 0.25)
    per = log_loss_per_label(y, p)
    # any: (-ln 0.25 - ln 0.75) / 2; the others: -ln 0.75.
    assert per[0] == pytest.approx((math.log(4) + math.log(4 / 3)) / 2)
    assert per[1:] == pytest.approx([math.log(4 / 3)] * 5)


def test_auc_counts_pairs_and_ties():
    # Positives scored 0.9 and 0.4, negatives 0.4 and 0.1: pairs (pos > neg) are
    # (0.9,0.4) (0.9,0.1) (0.4,0.1) = 3, one tie (0.4,0.4) counts 1/2 -> 3.5 / 4.
    assert auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.4, 0.1])) == pytest.approx(0.875)
    assert auc(np.array([0, 1]), np.array([0.9, 0.1])) == 0.0


def test_auc_is_nan_for_a_single_class():
    assert math.isnan(auc(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])))


def test_accuracy_thresholds_at_one_half():
    y = np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]])
    p = np.array([[0.5, 0.2, 0, 0, 0, 0], [0.49, 0.1, 0, 0, 0, 0]])
    assert accuracy_per_label(y, p).tolist() == [1.0, 0.5, 1.0, 1.0, 1.0, 1.0]


def test_prior_correction_moves_a_balanced_prior_to_the_true_one():
    # Trained at 50 %: a prediction of 0.5 means "the prior", which becomes 0.14 at the true rate.
    assert prior_correct(np.array([0.5]), np.array([0.14]), np.array([0.5]))[0] == pytest.approx(0.14)
    # odds 3 (p=0.75) * (0.1/0.9) / (0.5/0.5) = 1/3 -> p = 0.25.
    assert prior_correct(np.array([0.75]), np.array([0.1]), np.array([0.5]))[0] == pytest.approx(0.25)
    # Equal priors leave probabilities unchanged.
    p = np.array([0.01, 0.3, 0.99])
    assert prior_correct(p, np.array(0.2), np.array(0.2)) == pytest.approx(p)


def test_summary_keys_every_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(20, 6))
    p = rng.random((20, 6))
    s = summary(y, p)
    assert s["weighted_log_loss"] == pytest.approx(weighted_log_loss(y, p))
    for key in ("log_loss", "auc", "accuracy"):
        assert list(s[key]) == list(LABELS)

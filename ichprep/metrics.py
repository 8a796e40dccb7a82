"""The competition metric and the per-label diagnostics, in plain numpy (no torch needed).

The RSNA score is a weighted multi-label log loss: every (image, label) pair contributes its
binary log loss, weighted 2 for `any` and 1 for each subtype, and the sum is divided by
N * sum(weights). Probabilities are clipped to [EPS, 1 - EPS] with EPS = 1e-7 before taking logs,
so a confidently wrong 0/1 prediction costs about 16 instead of infinity; 1e-7 is far below
any clipping a submission applies (ichprep.predict.submission clips at 1e-4), so it never changes a real score.
"""

from __future__ import annotations

import numpy as np

from ichprep import LABELS

EPS: float = 1e-7
"""Clipping for log loss: small enough to leave real scores unchanged, large enough to stay finite in float64."""

LABEL_WEIGHTS: tuple[float, ...] = tuple(2.0 if name == "any" else 1.0 for name in LABELS)
"""Metric weights in LABELS order: `any` counts twice, each subtype once."""


def _clipped(p: np.ndarray, eps: float) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)


def elementwise_log_loss(y: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Binary log loss of every entry of `p` against the 0/1 targets `y` (same shape)."""
    y = np.asarray(y, dtype=np.float64)
    p = _clipped(p, eps)
    return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def weighted_log_loss(
    y: np.ndarray, p: np.ndarray, weights: tuple[float, ...] = LABEL_WEIGHTS, eps: float = EPS
) -> float:
    """The competition score: sum_i sum_j w_j * logloss_ij / (N * sum_j w_j) for (N, 6) arrays."""
    w = np.asarray(weights, dtype=np.float64)
    losses = elementwise_log_loss(y, p, eps)
    return float((losses * w).sum() / (losses.shape[0] * w.sum()))


def log_loss_per_label(y: np.ndarray, p: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Mean binary log loss of each column."""
    return elementwise_log_loss(y, p, eps).mean(axis=0)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (what the Mann-Whitney statistic needs)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks_sorted = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney U / (n_pos * n_neg)); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_per_label(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUC of each column (NaN for a column with a single class)."""
    return np.array([auc(y[:, j], p[:, j]) for j in range(y.shape[1])])


def accuracy_per_label(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Fraction of images whose thresholded prediction equals the target, per column."""
    return ((np.asarray(p) >= threshold) == (np.asarray(y) >= 0.5)).mean(axis=0)


def prior_correct(p: np.ndarray, pi_true: np.ndarray, pi_train: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Rescale probabilities of a model trained at positive rate `pi_train` to the true rate `pi_true`.

    Why: a model trained on a rebalanced (e.g. 1:1) sample learns the sample's prior; Bayes' rule
    says only the prior odds change, so odds' = odds * (pi_true/(1-pi_true)) / (pi_train/(1-pi_train)),
    per label (arrays broadcast over the last axis).
    """
    p = _clipped(p, eps)
    pi_true = _clipped(pi_true, eps)
    pi_train = _clipped(pi_train, eps)
    odds = p / (1.0 - p) * (pi_true / (1.0 - pi_true)) / (pi_train / (1.0 - pi_train))
    return odds / (1.0 + odds)


def summary(y: np.ndarray, p: np.ndarray, labels: tuple[str, ...] = LABELS) -> dict:
    """Everything `evaluate` and the training log report, keyed as the `--json` output is."""
    return {
        "weighted_log_loss": weighted_log_loss(y, p),
        "log_loss": dict(zip(labels, map(float, log_loss_per_label(y, p)))),
        "auc": dict(zip(labels, map(float, auc_per_label(y, p)))),
        "accuracy": dict(zip(labels, map(float, accuracy_per_label(y, p)))),
    }

"""Training curves and the LR range test plot (matplotlib, Agg backend, imported when called)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: pd.DataFrame, path: Path) -> Path:
    """Train loss and validation weighted log loss per epoch, and the validation AUC of every label."""
    curves_figure(history).savefig(path, dpi=100)
    return path


def curves_figure(history: pd.DataFrame):
    """The figure of ``plot_curves``: whole-number epochs, and a legend entry only for a drawn line.

    An AUC is undefined while validation holds no positive of a label (NaN in metrics.csv): such a
    label gets no line and is named on the panel, and a panel left without any line says why
    instead of staying empty.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="tight")
    ax_loss, ax_auc = fig.subplots(1, 2, sharex=True)
    series = [("train_loss", "train loss"), ("val_wll", "validation weighted log loss")]
    _plot(ax_loss, history, series, "weighted log loss", "o")
    aucs = [(c, c.removeprefix("val_auc_")) for c in history.columns if c.startswith("val_auc_")]
    _plot(ax_auc, history, aucs, "validation AUC", ".")
    undefined = [label for column, label in aucs if history[column].isna().all()]
    if "val_wll" not in history:
        ax_auc.text(0.5, 0.5, "no validation images", ha="center", va="center", transform=ax_auc.transAxes)
    elif not ax_auc.lines:
        ax_auc.text(0.5, 0.5, "no positives in validation:\nevery AUC is undefined", ha="center", va="center",
                    transform=ax_auc.transAxes)
    elif undefined:
        ax_auc.set_title(f"no positives in validation, so no AUC: {', '.join(undefined)}", fontsize="small")
    for ax in (ax_loss, ax_auc):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _plot(ax, history: pd.DataFrame, columns: list[tuple[str, str]], ylabel: str, marker: str) -> None:
    """One line per column that has a finite value, a legend for those lines only."""
    for column, label in columns:
        if column in history and history[column].notna().any():
            ax.plot(history["epoch"], history[column], marker=marker, label=label)
    ax.set_ylabel(ylabel)
    if ax.lines:
        ax.legend(fontsize="small")


def plot_lr_find(sweep: pd.DataFrame, suggestion: float, path: Path) -> Path:
    """Smoothed loss against the learning rate (log scale), with the suggested rate marked."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sweep["lr"], sweep["loss"], alpha=0.3, label="loss")
    ax.plot(sweep["lr"], sweep["smoothed_loss"], label="smoothed loss")
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.2e}")
    ax.set_xscale("log")
    smoothed = sweep["smoothed_loss"]
    ax.set_ylim(0.9 * smoothed.min(), 1.5 * smoothed.max())  # the raw spike at divergence would flatten the curve
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weighted BCE")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

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
    plt = _figure()
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(history["epoch"], history["train_loss"], marker="o", label="train loss")
    if "val_wll" in history:
        ax_loss.plot(history["epoch"], history["val_wll"], marker="o", label="validation weighted log loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("weighted log loss")
    ax_loss.legend()
    for col in (c for c in history.columns if c.startswith("val_auc_")):
        ax_auc.plot(history["epoch"], history[col], marker=".", label=col.removeprefix("val_auc_"))
    ax_auc.set_xlabel("epoch")
    ax_auc.set_ylabel("validation AUC")
    if ax_auc.lines:
        ax_auc.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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

"""report.png of ``clean-meta``: what the cleaning did, at a glance.

Three panels: positives per subtype before and after cleaning (the class balance the model
will see), the ``img_pct_window`` histogram with the little-brain threshold (how much a
threshold change would drop), and slices per study (whether whole studies came through).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ichprep import LABELS


def _label_panel(ax: Any, report: dict[str, Any]) -> None:
    """Grouped bars of positives per label, before and after cleaning."""
    x = np.arange(len(LABELS))
    before = [report["positives_before"].get(name, 0) for name in LABELS]
    after = [report["positives_after"].get(name, 0) for name in LABELS]
    ax.bar_label(ax.bar(x - 0.2, before, width=0.4, label="before"), fontsize=8)
    ax.bar_label(ax.bar(x + 0.2, after, width=0.4, label="kept"), fontsize=8)
    ax.set_xticks(x, LABELS, rotation=30, ha="right")
    ax.set_ylabel("positive images")
    title = "positives per label" if report["labelled"] else "positives per label (no labels given)"
    ax.set_title(title)
    ax.legend()


def _brain_panel(ax: Any, meta: pd.DataFrame, threshold: float) -> None:
    """Histogram of the brain-window pixel fraction with the drop threshold marked."""
    values = meta["img_pct_window"].dropna().to_numpy(dtype=float)
    ax.hist(values, bins=np.linspace(0.0, max(1e-6, values.max(initial=0.0)), 41))
    ax.axvline(threshold, color="red", linestyle="--", label=f"min-brain {threshold:g}")
    ax.set_xlabel("fraction of pixels with 0 < HU < 80")
    ax.set_ylabel("images")
    ax.set_title(f"img_pct_window ({(values < threshold).sum()} below threshold)")
    ax.legend()


def _study_panel(ax: Any, meta: pd.DataFrame) -> None:
    """Histogram of slices per study."""
    per_study = meta["StudyInstanceUID"].dropna().value_counts().to_numpy()
    if per_study.size:
        lo, hi = int(per_study.min()), int(per_study.max())
        ax.hist(per_study, bins=np.arange(lo, hi + 2) - 0.5 if hi - lo < 60 else 60)
    ax.set_xlabel("slices in study")
    ax.set_ylabel("studies")
    ax.set_title(f"slices per study ({per_study.size} studies)")


def plot_report(meta: pd.DataFrame, report: dict[str, Any], path: str | Path) -> Path:
    """Draw the three panels of ``report`` (from ``cleaning.clean``) into a PNG at ``path``.

    A bare ``Figure`` (Agg canvas, no pyplot) leaves a notebook's backend and figures alone.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    _label_panel(axes[0], report)
    _brain_panel(axes[1], meta, report["options"]["min_brain"])
    _study_panel(axes[2], meta)
    dropped = ", ".join(f"{k} {v}" for k, v in report["dropped"].items())
    fig.suptitle(f"clean-meta: {report['rows_in']} rows in, {report['rows_kept']} kept ({dropped})")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out

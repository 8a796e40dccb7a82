"""The training curves: whole-number epochs, legend entries only for drawn lines, and a word where an AUC is undefined."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.plots.training import curves_figure, plot_curves


def history(epochs: int = 3, **columns) -> pd.DataFrame:
    """metrics.csv rows: falling losses and a rising AUC per label, then ``columns`` set as given."""
    rows = pd.DataFrame({"epoch": np.arange(1, epochs + 1), "size": None, "lr": 1e-3,
                         "train_loss": np.linspace(0.7, 0.3, epochs), "val_wll": np.linspace(0.8, 0.4, epochs)})
    for label in LABELS:
        rows[f"val_auc_{label}"] = np.linspace(0.6, 0.9, epochs)
    return rows.assign(**columns)


def texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts) + " " + ax.get_title()


def test_epochs_are_whole_numbers_and_every_legend_entry_has_a_line():
    loss, auc = curves_figure(history(epochs=2, val_auc_epidural=np.nan)).axes
    for ax in (loss, auc):
        ax.figure.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [line.get_label() for line in ax.lines]
    assert "epidural" not in [t.get_text() for t in auc.get_legend().get_texts()]
    assert len(auc.lines) == len(LABELS) - 1
    assert "no positives in validation, so no AUC: epidural" in texts(auc)


def test_an_auc_panel_without_any_defined_auc_says_why():
    nan = {f"val_auc_{label}": np.nan for label in LABELS}
    _, auc = curves_figure(history(**nan)).axes
    assert not auc.lines and auc.get_legend() is None
    assert "no positives in validation" in texts(auc)


def test_a_run_without_validation_says_so():
    rows = history().drop(columns=["val_wll", *[f"val_auc_{label}" for label in LABELS]])
    loss, auc = curves_figure(rows).axes
    assert [line.get_label() for line in loss.lines] == ["train loss"]
    assert "no validation images" in texts(auc)


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves(history(), tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

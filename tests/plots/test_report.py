"""report.png is drawn for labelled and unlabelled runs without touching pyplot's state."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from ichprep.meta.cleaning import clean
from ichprep.plots.report import plot_report


def table(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "SOPInstanceUID": [f"i{k}" for k in range(n)], "PatientID": [f"P{k % 4}" for k in range(n)],
        "StudyInstanceUID": [f"S{k % 5}" for k in range(n)], "SeriesInstanceUID": [f"S{k % 5}" for k in range(n)],
        "ImagePositionPatient2": np.arange(n, dtype=float), "img_pct_window": np.linspace(0, 0.4, n),
        "header_fix": False,
    })


def test_report_png_for_an_unlabelled_run(tmp_path):
    meta, _, report = clean(table(30), None)
    path = plot_report(meta, report, tmp_path / "report.png")
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] > picture.shape[0]


def test_report_png_with_labels_leaves_pyplot_alone(tmp_path):
    import matplotlib.pyplot as plt

    labels = pd.DataFrame({"SOPInstanceUID": [f"i{k}" for k in range(30)]})
    for name in ("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"):
        labels[name] = np.uint8([k % 3 == 0 for k in range(30)])
    meta, _, report = clean(table(30), labels)
    before = plt.get_fignums()
    plot_report(meta, report, tmp_path / "report.png")
    assert plt.get_fignums() == before
    assert cv2.imread(str(tmp_path / "report.png")) is not None

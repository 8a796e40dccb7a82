"""Series order: the position along the slice normal, its fallbacks, and series of one slice or repeated positions."""

import numpy as np
import pandas as pd
import pytest
import torch

from ichprep.models.series_net import SeriesModel, SeriesShape, padded, series_probs
from ichprep.series.order import series_order
from ichprep.series.smooth import smoothed
from ichprep.store import Converted, open_converted


def _manifest(root, rows) -> Converted:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).assign(status="ok").to_parquet(root / "manifest.parquet")
    return open_converted(root)


def test_a_tilted_series_is_ordered_along_its_normal_not_by_z(tmp_path):
    # Slices stacked along the normal (0, 0.6, 0.8): z rises with the normal's position, y falls faster.
    iop = dict(ImageOrientationPatient=1.0, ImageOrientationPatient1=0.0, ImageOrientationPatient2=0.0,
               ImageOrientationPatient3=0.0, ImageOrientationPatient4=0.8, ImageOrientationPatient5=-0.6)
    rows = [dict(id=f"ID_{k}", SeriesInstanceUID="s", ImagePositionPatient=0.0, ImagePositionPatient1=-10.0 * d,
                 ImagePositionPatient2=1.0 * d, **iop) for k, d in enumerate([3, 1, 2, 0])]
    order, notes = series_order(_manifest(tmp_path, rows))
    assert order["slice"].sort_values().index.tolist() == ["ID_0", "ID_2", "ID_1", "ID_3"]  # normal . p = -5.2 d
    assert notes == []
    plain = [{k: v for k, v in r.items() if not k.startswith("ImageOrientation")} for r in rows]
    order, notes = series_order(_manifest(tmp_path / "z", plain))
    assert order["slice"].sort_values().index.tolist() == ["ID_3", "ID_1", "ID_2", "ID_0"]
    assert notes == ["1 series ordered (at least partly) by ImagePositionPatient's z (no ImageOrientationPatient)"]


def test_fallbacks_repeats_missing_positions_and_lone_slices(tmp_path):
    rows = [dict(id="ID_b", SeriesInstanceUID="s1", ImagePositionPatient2=5.0, InstanceNumber=1),
            dict(id="ID_a", SeriesInstanceUID="s1", ImagePositionPatient2=5.0, InstanceNumber=2),  # repeated position
            dict(id="ID_c", SeriesInstanceUID="s1", ImagePositionPatient2=None, InstanceNumber=None),  # missing: last
            dict(id="ID_d", SeriesInstanceUID="s1", ImagePositionPatient2=-5.0, InstanceNumber=3),
            dict(id="ID_e", SeriesInstanceUID="s2", ImagePositionPatient2=None, InstanceNumber=7),
            dict(id="ID_f", SeriesInstanceUID="s2", ImagePositionPatient2=None, InstanceNumber=2),
            dict(id="ID_g", SeriesInstanceUID=None, ImagePositionPatient2=1.0, InstanceNumber=1)]
    order, notes = series_order(_manifest(tmp_path, rows))
    s1 = order[order["series"] == "s1"].sort_values("slice")
    assert s1.index.tolist() == ["ID_d", "ID_a", "ID_b", "ID_c"]  # repeats keep the id order
    assert order[order["series"] == "s2"].sort_values("slice").index.tolist() == ["ID_f", "ID_e"]
    assert order.loc["ID_g", "series"] == "ID_g" and order.loc["ID_g", "slice"] == 0  # a series of its own
    assert "1 series ordered (at least partly) by the image id (no position or InstanceNumber)" in notes
    assert "1 series ordered (at least partly) by InstanceNumber (no position)" in notes
    only, _ = series_order(open_converted(tmp_path), ["ID_e", "ID_unknown"])
    assert only.loc["ID_unknown", "series"] == "ID_unknown" and only.loc["ID_e", "slice"] == 0


@pytest.mark.parametrize("shape", [SeriesShape(8, 16, 2, "lstm", conv=3),
                                   SeriesShape(8, 16, 2, "gru", conv=3, dilations=(1, 2, 4, 2), deltas=True, spacing=True)])
def test_a_series_output_does_not_depend_on_what_it_is_batched_and_padded_with(shape):
    """Deltas and spacing read each slice's neighbours, dilated convolutions reach 9 slices away: padding reaches none."""
    torch.manual_seed(0)
    model = SeriesModel(shape).eval()
    for p in model.head.parameters():
        torch.nn.init.normal_(p)  # the head starts at zero: make the RNN's output count
    series = [torch.randn(n, shape.width) for n in (1, 7, 130)]
    with torch.no_grad():
        alone = [model(*padded([s]))[0] for s in series]
        together = model(*padded(series))
        reordered = model(*padded(series[::-1]))
    for k, s in enumerate(series):
        assert torch.allclose(together[k, : len(s)], alone[k], atol=1e-5)
        assert torch.allclose(reordered[len(series) - 1 - k, : len(s)], alone[k], atol=1e-5)
    both = series_probs(model, series, torch.device("cpu"), reverse=True)
    for k, s in enumerate(series):
        backwards = torch.sigmoid(model(*padded([s.flip(0)]))[0]).flip(0)
        expected = (torch.sigmoid(alone[k]) + backwards) / 2
        assert np.allclose(both[k], expected.detach().numpy(), atol=1e-5)


def test_smoothing_is_a_fixed_kernel_within_each_series_with_the_edges_repeated():
    p = np.array([[0.0], [1.0], [0.0], [1.0]]).repeat(6, 1)
    out = smoothed(p, [np.array([0, 1, 2]), np.array([3])])
    assert np.allclose(out[:, 0], [0.25, 0.5, 0.25, 1.0])

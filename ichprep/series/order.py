"""Where each slice sits in its series: the position along the series' normal, with stated fallbacks.

A CT series is a stack of parallel slices; its order is the projection of ImagePositionPatient on
the normal of the slice plane (the cross product of ImageOrientationPatient's row and column
directions). The competition's series are axial, where that is the z coordinate, but a tilted
gantry or a sagittal series is ordered right only by the projection. Without orientation the
z coordinate serves, without positions the InstanceNumber, without either the image id: each
fallback is reported, since the order it gives may not be anatomical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ichprep.models.inputs import SPACING_MM
from ichprep.store import Converted
from ichprep.store.converted import ORIENTATION, POSITION


def _numbers(table: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    """The columns as floats (N, len(columns)), or None when one is missing altogether."""
    if not set(columns) <= set(table.columns):
        return None
    return table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)


def along_normal(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each row's position along its slice normal (NaN where unknown), and how it was found per row.

    ``how`` is ``normal`` (position projected on the orientation's normal), ``z`` (the third
    coordinate, no orientation), ``instance`` (InstanceNumber) or ``id``.
    """
    n = len(table)
    pos = np.full(n, np.nan)
    how = np.full(n, "id", dtype=object)
    xyz, iop = _numbers(table, list(POSITION)), _numbers(table, list(ORIENTATION))
    if xyz is not None and iop is not None:
        normal = np.cross(iop[:, :3], iop[:, 3:])
        proj = np.einsum("ij,ij->i", xyz, normal)
        ok = np.isfinite(proj) & (np.linalg.norm(normal, axis=1) > 0.5)
        pos[ok], how[ok] = proj[ok], "normal"
    if "ImagePositionPatient2" in table.columns:
        z = pd.to_numeric(table["ImagePositionPatient2"], errors="coerce").to_numpy(dtype=np.float64)
        use = np.isnan(pos) & np.isfinite(z)
        pos[use], how[use] = z[use], "z"
    if "InstanceNumber" in table.columns:
        inst = pd.to_numeric(table["InstanceNumber"], errors="coerce").to_numpy(dtype=np.float64)
        use = np.isnan(pos) & np.isfinite(inst)
        pos[use], how[use] = inst[use], "instance"
    return pd.Series(pos, index=table.index), pd.Series(how, index=table.index)


def series_order(data: Converted, ids: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """id -> series, position, slice (0, 1, ... within the series), sorted by series then slice; and notes.

    Read from DATA's manifest (``Converted.slices``). An image without a SeriesInstanceUID is a one-slice series of
    its own; slices at the same position (repeats) keep the id order, a missing position falls
    back as ``along_normal`` says. ``ids`` restricts the table to those images (others unknown to
    the manifest are single slices). The notes say how many series used each fallback.
    """
    manifest = data.slices
    table = manifest if manifest is not None else pd.DataFrame({"id": [] if ids is None else list(ids)})
    if "status" in table.columns:
        table = table[table["status"].fillna("ok") == "ok"]
    table = table.drop_duplicates("id").set_index("id")
    if ids is not None:
        table = table.reindex(pd.Index(list(ids), name="id"))
    series = table["SeriesInstanceUID"] if "SeriesInstanceUID" in table.columns else pd.Series(np.nan, index=table.index)
    series = series.astype(object).where(series.notna(), pd.Series(table.index, index=table.index))
    position, how = along_normal(table)
    out = pd.DataFrame({"series": series.astype(str).to_numpy(), "position": position.to_numpy(), "how": how.to_numpy(),
                        "id": table.index.to_numpy()})
    worst = out.groupby("series")["how"].agg(lambda h: max(h, key=["normal", "z", "instance", "id"].index))
    out = out.sort_values(["series", "position", "id"], kind="stable", na_position="last")
    out["slice"] = out.groupby("series").cumcount()
    notes = []
    for kind, why in (("z", "ImagePositionPatient's z (no ImageOrientationPatient)"), ("instance", "InstanceNumber (no position)"),
                      ("id", "the image id (no position or InstanceNumber)")):
        count = int((worst == kind).sum())
        if count:
            notes.append(f"{count} series ordered (at least partly) by {why}")
    return out.set_index("id")[["series", "position", "slice"]], notes


def positions(order: pd.DataFrame) -> np.ndarray:
    """Each slice's position along its series (``series_order``'s table); where unknown, its slice number at the usual spacing."""
    known = order["position"].to_numpy(dtype=np.float64)
    return np.where(np.isfinite(known), known, order["slice"].to_numpy(dtype=np.float64) * SPACING_MM)

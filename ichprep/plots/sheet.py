"""Contact sheet of converted images, one row per hemorrhage subtype plus one of negatives.

The quickest check that conversion and labels agree is to look: a subdural row should show
crescents along the skull, a negatives row none. Images come from convert's output, either
``<id>.png``/``<id>.jpg`` files or HDF5 shards (raw arrays or encoded bytes per the contract).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.labels import ID_COLUMN, load_table
from ichprep.paths import existing, output_file
from ichprep.store import open_converted

SHORT = {"any": "any", "epidural": "EDH", "intraparenchymal": "IPH", "intraventricular": "IVH",
         "subarachnoid": "SAH", "subdural": "SDH"}
"""Usual radiology abbreviations, so a tile's label fits under a thumbnail."""
NEGATIVE = "negative"


def read_label_table(meta: str | Path) -> pd.DataFrame:
    """``SOPInstanceUID`` + LABELS of every labelled image, from clean-meta's parquet or a labels CSV."""
    table = load_table(meta).dropna(subset=list(LABELS))
    return table[[ID_COLUMN, *LABELS]].drop_duplicates(ID_COLUMN)


def pick(labels: pd.DataFrame, available: set[str], per_subtype: int, seed: int) -> dict[str, list[str]]:
    """Up to ``per_subtype`` available ids per subtype and of negatives, seeded, sorted by id."""
    labels = labels[labels[ID_COLUMN].isin(available)]
    rng = np.random.default_rng(seed)
    rows: dict[str, list[str]] = {}
    for name in (*LABELS[1:], NEGATIVE):
        mask = labels["any"] == 0 if name == NEGATIVE else labels[name] == 1
        ids = np.sort(labels.loc[mask, ID_COLUMN].to_numpy(dtype=str))
        chosen = rng.choice(ids, size=min(per_subtype, len(ids)), replace=False) if len(ids) else ids
        rows[name] = sorted(chosen.tolist())
    return rows


def tile_caption(image_id: str, label_row: pd.Series) -> str:
    """Id and positive subtypes (abbreviated), or "none"."""
    positives = [SHORT[name] for name in LABELS[1:] if label_row[name] == 1]
    return f"{image_id}\n{' '.join(positives) or 'none'}"


def contact_sheet(data: str | Path, meta: str | Path, out: str | Path, per_subtype: int = 8, seed: int = 0) -> int:
    """Draw the sheet to ``out`` (PNG); returns how many images it shows."""
    from matplotlib.figure import Figure

    existing(Path(meta), "--meta", "file")
    output_file(Path(out), "--out", (".png",))
    images = open_converted(data).images
    position = {image_id: k for k, image_id in enumerate(images.ids)}
    labels = read_label_table(meta)
    rows = pick(labels, set(position), per_subtype, seed)
    shown = sum(map(len, rows.values()))
    if not shown:
        raise IchprepError(f"none of the {len(labels)} labelled ids of {meta} is among the {len(position)} images in {data}")
    by_id = labels.set_index(ID_COLUMN)
    fig = Figure(figsize=(1.9 * per_subtype + 1.2, 2.2 * len(rows)), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), per_subtype, squeeze=False))
    for axes_row, (name, ids) in zip(axes, rows.items()):
        axes_row[0].set_ylabel(f"{name}\n({len(ids)})", fontsize=10)
        if not ids:
            axes_row[0].text(0.5, 0.5, "no images", ha="center", va="center", transform=axes_row[0].transAxes)
        for col, ax in enumerate(axes_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(ids):
                ax.set_frame_on(col == 0 and not ids)
                continue
            ax.imshow(images.read(position[ids[col]]))
            ax.set_title(tile_caption(ids[col], by_id.loc[ids[col]]), fontsize=7)
    fig.suptitle(f"{data}: {shown} images, up to {per_subtype} per subtype")
    fig.savefig(Path(out), dpi=90)
    return shown

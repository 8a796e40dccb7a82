"""Contact sheet: images found in folders and shards, picked per subtype, drawn to a PNG."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.plots.sheet import contact_sheet, pick, tile_caption
from ichprep.store import open_store


def image(value: int) -> np.ndarray:
    """An RGB image whose three channels differ, so a channel swap would show."""
    out = np.zeros((32, 32, 3), dtype=np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = value, value // 2, 255 - value
    return out


def write_shard(path, ids, images, codec):
    with h5py.File(path, "w") as h5:
        h5.attrs["codec"] = codec
        h5.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        if codec in ("png", "jpeg"):
            ext = ".png" if codec == "png" else ".jpg"
            data = [np.frombuffer(cv2.imencode(ext, im[..., ::-1])[1].tobytes(), np.uint8) for im in images]
            ds = h5.create_dataset("images", (len(data),), dtype=h5py.vlen_dtype(np.uint8))
            for k, d in enumerate(data):
                ds[k] = d
        else:
            h5.create_dataset("images", data=np.stack(images), compression="lzf")


def labels_table(rows: dict[str, set[str]]) -> pd.DataFrame:
    table = pd.DataFrame({"SOPInstanceUID": list(rows)})
    for name in LABELS:
        table[name] = [int(name in positives or (name == "any" and bool(positives))) for positives in rows.values()]
    return table


@pytest.mark.parametrize("codec", ["lzf", "png"])
def test_shard_images_the_sheet_reads_come_back_as_rgb(tmp_path, codec):
    write_shard(tmp_path / "shard-00000.h5", ["a", "b"], [image(10), image(200)], codec)
    found = open_store(tmp_path)
    assert sorted(found.ids) == ["a", "b"]
    assert np.array_equal(found.read(found.ids.index("b")), image(200))


def test_folder_images_the_sheet_reads_come_back_as_rgb(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), image(50)[..., ::-1])
    found = open_store(tmp_path)
    assert found.ids == ["x"] and np.array_equal(found.read(0), image(50))


def test_pick_takes_only_available_images_of_each_subtype():
    labels = labels_table({"s1": {"subdural"}, "s2": {"subdural"}, "s3": {"subdural"}, "e1": {"epidural"},
                           "n1": set(), "n2": set()})
    rows = pick(labels, available={"s1", "s2", "s3", "n1"}, per_subtype=2, seed=0)
    assert len(rows["subdural"]) == 2 and set(rows["subdural"]) <= {"s1", "s2", "s3"}
    assert rows["epidural"] == [] and rows["negative"] == ["n1"]
    assert "any" not in rows


def test_caption_lists_positive_subtypes():
    row = labels_table({"ID_1": {"subdural", "epidural"}}).iloc[0]
    assert tile_caption("ID_1", row) == "ID_1\nEDH SDH"
    assert tile_caption("ID_2", labels_table({"ID_2": set()}).iloc[0]) == "ID_2\nnone"


def test_sheet_from_jpeg_shards_is_a_png(tmp_path):
    ids = [f"i{k}" for k in range(6)]
    write_shard(tmp_path / "shard-00000.h5", ids, [image(40 * k) for k in range(6)], "jpeg")
    meta = tmp_path / "train.parquet"
    labels_table({i: ({"subarachnoid"} if k % 2 else set()) for k, i in enumerate(ids)}).to_parquet(meta)
    assert contact_sheet(tmp_path, meta, tmp_path / "sheet.png", per_subtype=2) == 4
    assert cv2.imread(str(tmp_path / "sheet.png")).shape[2] == 3


def test_sheet_needs_label_columns(tmp_path):
    cv2.imwrite(str(tmp_path / "x.png"), image(50))
    meta = tmp_path / "m.parquet"
    pd.DataFrame({"SOPInstanceUID": ["x"]}).to_parquet(meta)
    with pytest.raises(IchprepError, match=r"no column\(s\) any, epidural"):
        contact_sheet(tmp_path, meta, tmp_path / "s.png")

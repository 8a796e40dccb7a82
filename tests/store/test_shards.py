"""HDF5 shards: lossless codecs give back exactly the PNG path's pixels, with ids, labels and an index."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hdf5plugin  # noqa: F401  (blosc filter for reading)
import numpy as np
import pandas as pd
import pytest

from ichprep import LABELS
from ichprep.convert import Options, convert
from ichprep.labels import read_labels
from ichprep.settings import Settings
from ichprep.store.shards import ShardReader
from ichprep.synth import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth"), n=30, seed=3, size=128)


@pytest.fixture(scope="module")
def png_out(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("png")
    convert(synth / "stage_1_train_images", out, Settings(size=64), Options(jobs=1, quiet=True))
    return out


def png_image(folder: Path, image_id: str) -> np.ndarray:
    return cv2.imread(str(folder / f"{image_id}.png"), cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize("codec", ["zstd", "lzf", "gzip", "blosc", "png"])
def test_lossless_shards_hold_the_png_paths_pixels_ids_and_labels(codec, synth, png_out, tmp_path):
    out = tmp_path / "h5"
    opts = Settings(size=64, format="hdf5", codec=codec), Options(jobs=1, quiet=True, shard_size=12, labels=synth / "stage_1_train.csv")
    result = convert(synth / "stage_1_train_images", out, *opts)
    assert result.failed == 0 and result.converted == 30
    shards = sorted(out.glob("shard-*.h5"))
    assert [p.name for p in shards] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    labels = read_labels(synth / "stage_1_train.csv").set_index("SOPInstanceUID")
    index = pd.read_parquet(out / "index.parquet")
    assert sorted(index["id"]) == sorted(p.stem for p in (synth / "stage_1_train_images").glob("*.dcm"))
    seen = 0
    for shard in shards:
        with h5py.File(shard, "r") as f:
            assert f.attrs["codec"] == codec and f.attrs["size"] == 64
            assert "brain" in f.attrs["windows"]
            ids = [i.decode() if isinstance(i, bytes) else i for i in f["ids"][:]]
            assert list(f["labels"].attrs["label_names"]) == list(LABELS)
            for row, image_id in enumerate(ids):
                np.testing.assert_array_equal(ShardReader(f).read(row), png_image(png_out, image_id))
                np.testing.assert_array_equal(f["labels"][row], labels.loc[image_id, list(LABELS)].to_numpy())
                hit = index[index["id"] == image_id].iloc[0]
                assert (hit["shard"], hit["row"]) == (shard.name, row)
                seen += 1
            if codec != "png":
                assert f["images"].chunks == (1, 64, 64, 3)
    assert seen == 30


def test_jpeg_codec_stores_decodable_4_4_4_bytes_close_to_png(synth, png_out, tmp_path):
    out = tmp_path / "h5"
    convert(synth / "stage_1_train_images", out, Settings(size=64, format="hdf5", codec="jpeg", quality=95), Options(jobs=1, quiet=True))
    with h5py.File(out / "shard-00000.h5", "r") as f:
        first = f["ids"][0]
        image_id = first.decode() if isinstance(first, bytes) else first
        image = ShardReader(f).read(0).astype(int)
    reference = png_image(png_out, image_id).astype(int)
    assert image.shape == reference.shape
    psnr = 10 * np.log10(255**2 / max(np.mean((image - reference) ** 2), 1e-9))
    assert psnr > 35


def test_rerun_skips_completed_shards_and_orphans_are_removed(synth, tmp_path):
    out = tmp_path / "h5"
    opts = Settings(size=64, format="hdf5"), Options(jobs=1, quiet=True, shard_size=10)
    convert(synth / "stage_1_train_images", out, *opts)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5")}
    (out / "shard-00099.h5").write_bytes(b"finished after a stop, never recorded")
    again = convert(synth / "stage_1_train_images", out, *opts)
    assert (again.converted, again.skipped) == (0, 30)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.h5")} == before

"""The Dataset over convert's output: folders, HDF5 shards (raw and encoded), labels, neighbours, workers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ich_fixtures import (
    fabricate,
    write_folder,
    write_manifest,
    write_shards,
)
from torch.utils.data import DataLoader

from ichprep import LABELS
from ichprep.data.dataset import make_dataset, neighbour_rows
from ichprep.store import ShardStore, open_converted, open_store


def chw(img: np.ndarray) -> torch.Tensor:
    """The stored uint8 image as the Dataset returns it: channels first."""
    return torch.from_numpy(img.transpose(2, 0, 1).copy())


@pytest.fixture(scope="module")
def fake():
    return fabricate(12, seed=1, size=16)


def test_folder_items_are_stored_rgb_channels_first_with_labels(tmp_path, fake):
    ids, images, labels, table = fake
    source = open_store(write_folder(tmp_path / "png", ids, images))
    frame = pd.DataFrame(labels, index=ids, columns=list(LABELS))
    ds = make_dataset(source, ids[3:6], frame)
    x, y = ds[1]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8
    assert torch.equal(x, chw(images[4]))
    assert y.tolist() == labels[4].astype(float).tolist()


@pytest.mark.parametrize("codec", ["lzf", "gzip", "png"])
def test_shards_return_the_stored_pixels(tmp_path, fake, codec):
    ids, images, labels, _ = fake
    source = open_store(write_shards(tmp_path / codec, ids, images, labels, codec=codec))
    assert isinstance(source, ShardStore)
    ds = make_dataset(source, ids, None)
    for i in (0, 7, 11):
        assert torch.equal(ds[i][0], chw(images[i]))


def test_jpeg_shards_decode_close_to_the_original(tmp_path, fake):
    ids, images, labels, _ = fake
    source = open_store(write_shards(tmp_path / "jpg", ids, images, labels, codec="jpeg"))
    x = make_dataset(source, ids, None)[5][0]
    assert (x.float() - chw(images[5]).float()).abs().mean() / 255 < 0.05


def test_shards_without_index_parquet_are_indexed_from_their_ids(tmp_path, fake):
    ids, images, labels, _ = fake
    root = write_shards(tmp_path / "s", ids, images, labels)
    (root / "index.parquet").unlink()
    source = open_store(root)
    assert source.ids == ids
    assert torch.equal(make_dataset(source, [ids[9]], None)[0][0], chw(images[9]))


def test_unlabelled_items_have_nan_labels(tmp_path, fake):
    ids, images, _, _ = fake
    ds = make_dataset(open_store(write_folder(tmp_path / "png", ids, images)), ids, None)
    assert torch.isnan(ds[0][1]).all() and ds[0][1].shape == (6,)


def test_neighbours_follow_z_within_a_series_and_repeat_edges():
    ids = ["a", "b", "c", "d", "lone"]
    series = pd.DataFrame(
        {"SeriesInstanceUID": ["s1", "s1", "s1", "s2"], "ImagePositionPatient2": [10.0, 30.0, 20.0, 0.0]},
        index=["a", "b", "c", "d"],
    )
    rows = neighbour_rows(ids, series, 1)
    # Sorted by z, series s1 is a (10), c (20), b (30).
    assert rows.tolist() == [[0, 0, 2], [2, 1, 1], [0, 2, 1], [3, 3, 3], [4, 4, 4]]


def test_neighbour_channels_stack_previous_current_next(tmp_path, fake):
    ids, images, labels, table = fake
    root = write_folder(tmp_path / "png", ids, images)
    write_manifest(root, table)
    source = open_store(root)
    ds = make_dataset(source, ids, None, open_converted(root).series, neighbours=1)
    x = ds[5][0]
    assert ds.channels == 9 and x.shape == (9, 16, 16)
    # z falls with the id order, so the slice below (previous) is ids[6] and the one above ids[4].
    assert torch.equal(x[0:3], chw(images[6]))
    assert torch.equal(x[3:6], chw(images[5]))
    assert torch.equal(x[6:9], chw(images[4]))
    # ids[4] is the first slice of its series and the highest z: its "next" repeats itself.
    assert torch.equal(ds[4][0][6:9], chw(images[4]))


def test_2_5d_stacks_the_brain_window_of_the_previous_the_slice_and_the_next(tmp_path, fake):
    ids, images, labels, table = fake
    root = write_folder(tmp_path / "png", ids, images)
    write_manifest(root, table)
    source = open_store(root)
    ds = make_dataset(source, ids, None, open_converted(root).series, neighbours=3, stack="2.5d")
    x = ds[5][0]
    assert ds.channels == 3 and x.shape == (3, 16, 16)
    # The first stored channel (brain) of ids[6] (below), ids[5], ids[4] (above), whatever --neighbours says.
    assert [torch.equal(x[k], torch.from_numpy(images[i][..., 0].copy())) for k, i in enumerate((6, 5, 4))] == [True] * 3


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_loader_workers_read_shards_under_fork_and_spawn(tmp_path, fake, context):
    ids, images, labels, _ = fake
    source = open_store(write_shards(tmp_path / "s", ids, images, labels))
    source.read(0)  # an already-open handle in the parent must not leak into the workers
    ds = make_dataset(source, ids, source.labels())
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=context)
    xs, ys = zip(*loader)
    assert torch.equal(torch.cat(xs), torch.stack([chw(i) for i in images]))
    assert np.array_equal(torch.cat(ys).numpy(), labels)


def test_loader_workers_read_a_folder_under_spawn(tmp_path, fake):
    ids, images, labels, _ = fake
    ds = make_dataset(open_store(write_folder(tmp_path / "png", ids, images)), ids, None)
    loader = DataLoader(ds, batch_size=6, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(torch.cat([x for x, _ in loader]), torch.stack([chw(i) for i in images]))


def test_unknown_ids_are_refused(tmp_path, fake):
    ids, images, _, _ = fake
    with pytest.raises(KeyError, match="not in the images"):
        make_dataset(open_store(write_folder(tmp_path / "png", ids, images)), ["ID_nope"], None)


def test_converts_png_folder_and_hdf5_shards_read_identically(tmp_path):
    import subprocess
    import sys

    from ichprep.labels import read_labels

    ichprep = str(Path(sys.executable).parent / "ichprep")

    def run(*args: str) -> None:
        done = subprocess.run([ichprep, *args, "-q"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    run("synth", str(tmp_path / "syn"), "--n", "12", "--size", "64")
    dicoms, csv = str(tmp_path / "syn" / "stage_1_train_images"), tmp_path / "syn" / "stage_1_train.csv"
    run("convert", dicoms, str(tmp_path / "png"), "--size", "32", "--jobs", "1")
    run("convert", dicoms, str(tmp_path / "h5"), "--size", "32", "--jobs", "1", "--format", "hdf5", "--labels", str(csv))
    png, h5 = open_store(tmp_path / "png"), open_store(tmp_path / "h5")
    assert isinstance(h5, ShardStore) and sorted(h5.ids) == png.ids
    a, b = make_dataset(png, png.ids, None), make_dataset(h5, png.ids, None)
    for i in range(len(png.ids)):
        assert torch.equal(a[i][0], b[i][0])
    expected = read_labels(csv).set_index("SOPInstanceUID")[list(LABELS)]
    assert np.array_equal(h5.labels().loc[png.ids].to_numpy(), expected.loc[png.ids].to_numpy())

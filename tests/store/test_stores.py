"""Reading convert's output by position: folders and shards, labels stored in shards, pickling."""

import pickle

import numpy as np
import pytest
from ich_fixtures import fabricate, write_shards

from ichprep import LABELS
from ichprep.store import open_store


@pytest.fixture(scope="module")
def fake():
    return fabricate(12, seed=1, size=16)


def test_shard_labels_follow_label_names(tmp_path, fake):
    ids, images, labels, _ = fake
    source = open_store(write_shards(tmp_path / "s", ids, images, labels))
    table = source.labels()
    assert list(table.columns) == list(LABELS)
    assert np.array_equal(table.loc[ids].to_numpy(), labels)


def test_a_read_source_pickles_without_open_handles(tmp_path, fake):
    ids, images, labels, _ = fake
    source = open_store(write_shards(tmp_path / "s", ids, images, labels))
    source.read(0)
    assert source._files
    assert pickle.loads(pickle.dumps(source))._files == {}

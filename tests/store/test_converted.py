"""open_converted: the one way into convert's output, each part read when first asked for and only then."""

import numpy as np
import pandas as pd
import pytest
from ich_fixtures import fabricate, labelled_folder, write_folder, write_settings, write_shards

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.settings import Settings
from ichprep.store import ImageFolder, ShardStore, open_converted


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, object]]:
    """(file name, columns asked for) of every Parquet file pandas reads from here on."""
    seen = []
    real = pd.read_parquet

    def spy(path, *args, **kwargs):
        seen.append((str(path).rsplit("/", 1)[-1], kwargs.get("columns")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", spy)
    return seen


def test_the_images_and_the_settings_are_read_without_the_manifest(tmp_path, reads):
    ids, images, _, _ = labelled_folder(tmp_path, 8, size=16)
    write_settings(tmp_path / "img", size=16)
    data = open_converted(tmp_path / "img")
    assert isinstance(data.images, ImageFolder) and data.images.ids == ids
    assert np.array_equal(data.images.read(3), images[3])
    assert data.settings == Settings.load(tmp_path / "img") and data.settings.size == 16
    assert reads == [], "neither the manifest nor the labels are read for the images"


def test_the_series_and_the_patients_come_from_the_manifests_slice_columns_read_once(tmp_path, reads):
    ids, _, _, table = labelled_folder(tmp_path, 8, size=16)
    manifest = pd.read_parquet(tmp_path / "img" / "manifest.parquet")
    manifest.assign(img_mean=1.0, img_std=2.0).to_parquet(tmp_path / "img" / "manifest.parquet")
    reads.clear()
    data = open_converted(tmp_path / "img")
    pd.testing.assert_frame_equal(data.series, table[["SeriesInstanceUID", "ImagePositionPatient2"]], check_names=False)
    assert data.patients.to_dict() == table["PatientID"].to_dict()
    assert len(reads) == 1 and reads[0][0] == "manifest.parquet"
    assert "img_mean" not in reads[0][1] and {"id", "status", "PatientID", "SeriesInstanceUID"} <= set(reads[0][1])
    assert "img_mean" in data.manifest.columns, "the whole manifest is there for clean-meta"


def test_without_a_manifest_there_are_no_series_and_no_patients(tmp_path):
    ids, images, _, _ = fabricate(4, size=16)
    data = open_converted(write_folder(tmp_path / "img", ids, images))
    assert data.slices is None and data.manifest is None and data.series is None and data.patients is None


def test_the_default_labels_are_clean_metas_train_table_beside_or_inside_the_folder(tmp_path):
    ids, _, labels, _ = labelled_folder(tmp_path, 8, size=16)
    data = open_converted(tmp_path / "img")
    table, file = data.labels
    assert file == tmp_path / "train.parquet" == data.labels_file
    assert np.array_equal(table.loc[ids, list(LABELS)].to_numpy(), labels)
    (tmp_path / "train.parquet").rename(tmp_path / "img" / "train.parquet")
    assert open_converted(tmp_path / "img").labels_file == tmp_path / "img" / "train.parquet"
    (tmp_path / "img" / "train.parquet").unlink()
    assert open_converted(tmp_path / "img").labels is None


def test_shards_with_their_own_labels_win_over_a_train_table(tmp_path):
    ids, images, labels, _ = labelled_folder(tmp_path, 8, size=16)
    write_shards(tmp_path / "shards", ids, images, 1 - labels)
    (tmp_path / "img" / "manifest.parquet").unlink()
    data = open_converted(tmp_path / "shards")
    table, file = data.labels
    assert isinstance(data.images, ShardStore) and file is None
    assert np.array_equal(table.loc[ids, list(LABELS)].to_numpy(), 1 - labels)


def test_a_folder_that_is_not_there_is_refused_when_its_images_are_asked_for(tmp_path):
    data = open_converted(tmp_path / "nope")
    with pytest.raises(IchprepError, match="not a folder of converted images"):
        assert data.images is None

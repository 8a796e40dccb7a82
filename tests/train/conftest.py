"""The labelled images the training tests share."""

import pytest
from ich_fixtures import labelled_folder


@pytest.fixture(scope="session")
def blobs(tmp_path_factory):
    """48 fabricated 16 px images in 12 patients, with a clean-meta style train.parquet beside them (read only)."""
    root = tmp_path_factory.mktemp("blobs")
    labelled_folder(root, 48, seed=3, size=16)
    return root

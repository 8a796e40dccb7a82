"""The competition zip and a Dask cluster give the same output as a local folder run."""

from __future__ import annotations

import filecmp
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ichprep.convert import Options, convert
from ichprep.settings import Settings
from ichprep.synth import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth"), n=16, seed=7, size=128)


@pytest.fixture(scope="module")
def folder_out(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    convert(synth / "stage_1_train_images", out, Settings(size=64), Options(jobs=1, quiet=True))
    return out


def same_images(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.png"))
    return names == sorted(p.name for p in b.glob("*.png")) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def test_zip_members_are_read_in_place_and_equal_the_folder_run(synth, folder_out, tmp_path):
    archive = tmp_path / "rsna-intracranial-hemorrhage-detection.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((synth / "stage_1_train_images").glob("*.dcm")):
            zf.write(path, f"stage_1_train_images/{path.name}")
        zf.writestr("stage_1_train.csv", (synth / "stage_1_train.csv").read_text())
    out = tmp_path / "zipped"
    result = convert(archive, out, Settings(size=64), Options(jobs=2, quiet=True))
    assert (result.converted, result.failed) == (16, 0)
    assert same_images(folder_out, out)
    sources = pd.read_parquet(out / "manifest.parquet")["source"]
    assert sources.str.startswith(f"{archive}!stage_1_train_images/").all()
    assert not (tmp_path / "stage_1_train_images").exists()


def test_ids_restrict_a_zip_run_to_the_listed_images(synth, tmp_path):
    archive = tmp_path / "a.zip"
    paths = sorted((synth / "stage_1_train_images").glob("*.dcm"))
    with zipfile.ZipFile(archive, "w") as zf:
        for path in paths:
            zf.write(path, path.name)
    wanted = [p.stem for p in paths[:5]]
    convert(archive, tmp_path / "out", Settings(size=64), Options(jobs=1, quiet=True, ids=wanted))
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.png")) == wanted


@pytest.mark.slow
def test_a_dask_cluster_writes_the_same_images_as_a_local_run(synth, folder_out, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        result = convert(
            synth / "stage_1_train_images", tmp_path / "dask", Settings(size=64), Options(quiet=True, scheduler=cluster.scheduler_address)
        )
    assert (result.converted, result.failed) == (16, 0)
    assert same_images(folder_out, tmp_path / "dask")
    local = pd.read_parquet(folder_out / "manifest.parquet").sort_values("id").reset_index(drop=True)
    remote = pd.read_parquet(tmp_path / "dask" / "manifest.parquet").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(local.drop(columns=["source", "fname"]), remote.drop(columns=["source", "fname"]))

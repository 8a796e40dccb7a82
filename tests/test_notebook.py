"""examples/download_to_submission.ipynb runs top to bottom against phantoms served as the competition's zip.

The zip has the download's layout (``stage_2_train/``, ``stage_2_test/``, ``stage_2_train.csv``,
``stage_2_sample_submission.csv``) and is served by a loopback HTTP server that answers byte
ranges, as the competition's storage does. The notebook's parameter cell is replaced, as a user
would edit it, and every cell is executed in a fresh kernel.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from zipserver import ZipServer

from ichprep import SUBTYPES
from ichprep.convert.sources.zipformat import PROBE
from ichprep.synth import IMAGES_DIR, LABELS_CSV, generate

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "download_to_submission.ipynb"
TRAIN, TEST = 80, 20


def download(folder: Path) -> Path:
    """Phantoms packed as the competition's zip: labelled training images, unlabelled test images."""
    raw = generate(folder / "raw", n=TRAIN + TEST, seed=3, size=64)
    dicoms = sorted((raw / IMAGES_DIR).glob("*.dcm"))
    with open(raw / LABELS_CSV) as fh:
        rows = list(csv.reader(fh))[1:]
    test_ids = {p.stem for p in dicoms[TRAIN:]}
    path = folder / "rsna-intracranial-hemorrhage-detection.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, dicom in enumerate(dicoms):
            zf.write(dicom, f"{'stage_2_test' if k >= TRAIN else 'stage_2_train'}/{dicom.name}")
        zf.writestr("stage_2_train.csv", "ID,Label\n" + "".join(f"{i},{v}\n" for i, v in rows if i.rsplit("_", 1)[0] not in test_ids))
        zf.writestr("stage_2_sample_submission.csv", "ID,Label\n" + "".join(f"{i}_{s},0.5\n" for i in sorted(test_ids) for s in SUBTYPES))
    return path


@pytest.mark.slow
def test_the_notebook_goes_from_the_download_to_a_submission(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    zip_path = download(tmp_path)
    work = tmp_path / "work"
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("# Parameters"))
    with ZipServer(zip_path) as server:
        parameters.source = (f"SOURCE = {server.url()!r}\nHEADERS = []\nWORK = {str(work)!r}\nMAX_DISK = '1GB'\nSIZE = 64\n"
                             "FORMAT = 'jpg'\nARCH = 'resnet18'\nFOLDS = 2\nEPOCHS = 1\nSERIES_EPOCHS = 2\nBATCH_SIZE = 8\n"
                             "MAX_IMAGES = None\nINSTALL = False\nICHPREP = ''\n")
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        served = server.served

    outputs = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert f"{TRAIN} labelled training images, {TEST} test images" in outputs
    assert f"train: {TRAIN} converted, 0 failed" in outputs and f"test: {TEST} converted, 0 failed" in outputs
    quality = json.loads((work / "train" / "ichprep.json").read_text())["quality"]
    assert f"--max-disk 1.0 GB picks JPEG quality {quality}: estimated" in outputs and f"; JPEG quality {quality}\n" in outputs
    assert json.loads((work / "test" / "ichprep.json").read_text())["quality"] == quality, "the test images are made as train's"
    assert "out-of-fold weighted log loss" in outputs and "series model" in outputs, "both stages train"
    assert (work / "srun" / "model.pt").is_file() and len(pd.read_csv(work / "run" / "oof.csv")) > 0
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2, "the contact sheet and the training curves are shown inline"
    sub = pd.read_csv(work / "submission.csv")
    expected = pd.read_csv(work / "stage_2_sample_submission.csv")
    assert sorted(sub["ID"]) == sorted(expected["ID"]) and sub["Label"].between(0, 1).all()
    listings = 4  # two fetches and two conversions each read the zip's end and directory once
    assert served < 1.1 * zip_path.stat().st_size + listings * 2 * PROBE, "the notebook downloads each member about once"
    assert not list(work.rglob("*.dcm")), "no DICOM ever reaches the disk"

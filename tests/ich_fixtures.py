"""Fabricated converted data for the training-side tests: 3-channel images with bright blobs.

Not a test module: tests import it to build tiny image folders and HDF5 shards following the
convert contract, without needing DICOMs. A positive image carries a bright blob whose position
says its subtype (so a small network can learn it within seconds).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd

from ichprep import LABELS
from ichprep.settings import Settings

SUBTYPE_CENTRES = ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75), (0.5, 0.5))
"""Blob centre (x, y as fractions of the side) of each subtype in LABELS[1:] order."""


def blob_image(label: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB uint8 image: dim noise, plus a bright disc for each positive subtype."""
    img = rng.integers(20, 60, size=(size, size, 3), dtype=np.uint8)
    for j, (cx, cy) in enumerate(SUBTYPE_CENTRES):
        if label[j + 1]:
            cv2.circle(img, (int(cx * size), int(cy * size)), max(2, size // 8), (230, 200, 170), -1)
    return img


def fabricate(n: int, seed: int = 0, size: int = 32, slices_per_series: int = 4) -> tuple[list[str], np.ndarray, np.ndarray, pd.DataFrame]:
    """ids, images (n, size, size, 3) uint8, labels (n, 6) uint8 in LABELS order, and a table with
    PatientID / SeriesInstanceUID / ImagePositionPatient2 (z falling with the id order, so sorting
    by z reverses it: a neighbour test can tell the two apart)."""
    rng = np.random.default_rng(seed)
    ids = [f"ID_{i:09x}" for i in range(n)]
    labels = np.zeros((n, len(LABELS)), dtype=np.uint8)
    positive = rng.random(n) < 0.5
    subtype = rng.integers(0, 5, size=n)
    labels[positive, subtype[positive] + 1] = 1
    labels[:, 0] = labels[:, 1:].max(axis=1)
    images = np.stack([blob_image(labels[i], rng, size) for i in range(n)])
    series = np.arange(n) // slices_per_series
    table = pd.DataFrame(
        {
            "PatientID": [f"ID_p{s // 2:05d}" for s in series],
            "SeriesInstanceUID": [f"ID_s{s:05d}" for s in series],
            "ImagePositionPatient2": -5.0 * np.arange(n),
        },
        index=pd.Index(ids, name="id"),
    )
    return ids, images, labels, table


def labelled_folder(root: Path, n: int, seed: int = 0, size: int = 32) -> tuple[list[str], np.ndarray, np.ndarray, pd.DataFrame]:
    """``n`` fabricated images converted into ROOT/img (with its manifest) and a clean-meta ROOT/train.parquet.

    Returns what ``fabricate`` made, for tests that check against it.
    """
    ids, images, labels, table = fabricate(n, seed=seed, size=size)
    write_folder(root / "img", ids, images)
    write_manifest(root / "img", table)
    write_train_table(root / "train.parquet", ids, labels, table)
    return ids, images, labels, table


def area_resized(images: np.ndarray, size: int) -> np.ndarray:
    """OpenCV's INTER_AREA on stored uint8 images: what predict did before resizing moved to the device."""
    return np.stack([cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) for img in images])


def write_folder(root: Path, ids: list[str], images: np.ndarray, fmt: str = "png") -> Path:
    """Images as ROOT/<id>.<fmt> (RGB stored as the BGR files OpenCV writes), plus ichprep.json."""
    root.mkdir(parents=True, exist_ok=True)
    for image_id, img in zip(ids, images):
        cv2.imwrite(str(root / f"{image_id}.{fmt}"), np.ascontiguousarray(img[..., ::-1]))
    write_settings(root, size=images.shape[1], crop=False, format=fmt)
    return root


def write_settings(root: Path, **values) -> Settings:
    """ROOT/ichprep.json as convert writes it: the default brain, subdural and bone windows, resolved."""
    settings = Settings(**values)
    settings.save(root)
    return settings


def write_manifest(root: Path, table: pd.DataFrame) -> None:
    """ROOT/manifest.parquet with the columns of the contract the training side reads."""
    manifest = table.reset_index().assign(status="ok")
    manifest["SOPInstanceUID"] = manifest["id"]
    manifest.to_parquet(root / "manifest.parquet")


def write_train_table(path: Path, ids: list[str], labels: np.ndarray, table: pd.DataFrame, valid_frac: float = 0.25) -> Path:
    """A clean-meta style train.parquet: SOPInstanceUID, LABELS, patient/series/z and a patient fold."""
    frame = pd.DataFrame(labels, columns=list(LABELS))
    frame.insert(0, "SOPInstanceUID", ids)
    for col in table.columns:
        frame[col] = table[col].to_numpy()
    patients = sorted(set(frame["PatientID"]))
    valid = set(patients[: max(1, int(len(patients) * valid_frac))])
    frame["fold"] = np.where(frame["PatientID"].isin(valid), "valid", "train")
    frame.to_parquet(path)
    return path


def write_shards(
    root: Path, ids: list[str], images: np.ndarray, labels: np.ndarray | None, codec: str = "lzf", per_shard: int = 7
) -> Path:
    """HDF5 shards per the convert contract: raw (N,S,S,C) chunks or encoded jpeg/png bytes, ids, labels."""
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for s, start in enumerate(range(0, len(ids), per_shard)):
        name = f"shard-{s:05d}.h5"
        part = slice(start, start + per_shard)
        with h5py.File(root / name, "w") as f:
            if codec in ("jpeg", "png"):
                ext = ".jpg" if codec == "jpeg" else ".png"
                data = f.create_dataset("images", (len(ids[part]),), dtype=h5py.vlen_dtype(np.uint8))
                for i, img in enumerate(images[part]):
                    data[i] = np.frombuffer(cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]))[1].tobytes(), np.uint8)
            else:
                size = images.shape[1]
                f.create_dataset("images", data=images[part], chunks=(1, size, size, 3), compression=codec)
            f.create_dataset("ids", data=ids[part], dtype=h5py.string_dtype())
            if labels is not None:
                f.create_dataset("labels", data=labels[part])
                f["labels"].attrs["label_names"] = list(LABELS)
            f.attrs.update(codec=codec, size=images.shape[1], crop=False, windows="[]", ichprep_version="test")
        rows += [(image_id, name, i) for i, image_id in enumerate(ids[part])]
    pd.DataFrame(rows, columns=["id", "shard", "row"]).to_parquet(root / "index.parquet")
    write_settings(root, size=images.shape[1], crop=False, format="hdf5", codec=codec)
    return root


def write_model(path: Path, settings_from: Path, size: int = 32, neighbours: int = 0) -> Path:
    """An untrained model.pt, recorded by ``model_record`` as `train` records it, with ``settings_from``'s settings.

    Enough for what does not look at the weights: the settings check, the submission's shape.
    """
    import torch

    from ichprep.models.pretrained import RANDOM, Start, build
    from ichprep.models.saved import save
    from ichprep.store import open_converted
    from ichprep.train import TrainConfig
    from ichprep.train.network import model_record

    in_channels = 3 * (2 * neighbours + 1)
    cfg = TrainConfig(data=settings_from, out=path.parent, neighbours=neighbours, mean=(0.6,) * in_channels, std=(0.25,) * in_channels)
    rates = SimpleNamespace(data=open_converted(settings_from), train_rate=np.full(6, 0.3), true_rate=np.full(6, 0.3))
    torch.manual_seed(0)
    start = Start("resnet18", RANDOM)
    state = build(start, in_channels).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model_record(cfg, state, rates, in_channels, size, start, 0, "fixture"), path)
    return path

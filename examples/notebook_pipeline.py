"""ichprep from Python, as a notebook would use it: phantoms -> HDF5 shards -> cleaned table -> DataLoader.

    python examples/notebook_pipeline.py example/ --n 120

Every step is the library function behind a CLI command, so a notebook can run, inspect and
re-run each stage; re-running resumes instead of redoing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main(work: Path, n: int) -> None:
    from ichprep.convert import Options, Settings, convert
    from ichprep.meta import clean_meta
    from ichprep.synth import generate

    raw = generate(work / "raw", n=n, seed=0)
    result = convert(
        raw / "stage_1_train_images",
        work / "shards",
        Settings(format="hdf5", size=128),
        Options(labels=raw / "stage_1_train.csv", jobs=2, quiet=True),
    )
    print(f"converted {result.converted}, failed {result.failed}")

    report = clean_meta(work / "shards", raw / "stage_1_train.csv", work / "meta")
    print(f"kept {report['rows_kept']} of {report['rows_in']} slices")
    train = pd.read_parquet(work / "meta" / "train.parquet")
    print(train[["SOPInstanceUID", "any", "fold"]].head())

    import torch
    from torch.utils.data import DataLoader

    from ichprep.data.batches import normalise
    from ichprep.data.dataset import MEAN, STD, make_dataset
    from ichprep.labels import load_labels
    from ichprep.store import open_store

    source = open_store(work / "shards")
    ids = train.loc[train["fold"] == "train", "SOPInstanceUID"].tolist()
    dataset = make_dataset(source, ids, load_labels(work / "meta" / "train.parquet"))
    images, labels = next(iter(DataLoader(dataset, batch_size=16, shuffle=True)))
    batch = normalise(images, (MEAN,) * images.shape[1], (STD,) * images.shape[1])  # the data's normalisation, per channel
    print(f"batch {tuple(batch.shape)} {batch.dtype}, labels {tuple(labels.shape)}, mean {batch.mean():.2f}")
    assert torch.isfinite(batch).all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--n", type=int, default=120)
    args = parser.parse_args()
    main(args.work, args.n)

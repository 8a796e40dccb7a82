"""The names of the files in the folders ichprep writes, and how to recognise one: defined once for every stage.

convert writes these names, the readers in ``ichprep.store`` and the training side look for them,
and ``predict`` uses ``is_converted`` to tell convert's output from a folder of DICOMs.

    OUT/ichprep.json          the settings the images were made with (``ichprep.settings``)
    OUT/manifest.parquet      one row per input: outcome, header, pixel statistics
    OUT/<id>.png | <id>.jpg   one image per slice, or
    OUT/shard-00000.h5 ...    HDF5 shards, with OUT/index.parquet (id -> shard, row)
    OUT/.ichprep/             run state: the lock and the manifest parts of an unfinished run

    META/train.parquet        clean-meta's kept images with labels and folds; META/labels.parquet every image's labels
    META/meta.parquet ...     every row of the table, Jeremy-named Feather copies, report.json and report.png

    RUN/model.pt, last.pt     what predict needs, and the checkpoint a run resumes from (train, train-series)
    RUN/best.pt               the checkpoint of the best validation epoch (train, train-series)
    RUN/epoch<N>.pt           with --snapshots, the model record of every epoch (train)
    RUN/metrics.csv, curves.png   one row and one point per epoch (train, train-series)
    RUN/lr_find.csv, .png     the learning-rate range test (lr-find)
    RUN/fold<i>/ ...          a --folds run's folds, each a run; RUN/oof.csv, folds.csv, oof_scores.json assembled from them
    SRUN/oof_embeddings.parquet, scores.json   train-series' embeddings and scores
    SRUN/cnn-epoch<N>/        with --cnn-epochs, the sequence model of each CNN epoch, a run of its own

    DEMO/sheet.png, test_scores.json, submission.csv      the demo's own outputs beside the folders above
"""

from __future__ import annotations

from pathlib import Path

SETTINGS = "ichprep.json"
MANIFEST = "manifest.parquet"
INDEX = "index.parquet"
STATE_DIR = ".ichprep"
PARTS = "parts"
PART_PATTERN = "part-{:06d}.parquet"
PART_GLOB = "part-*.parquet"
LOCK = "lock"
SHARD_PATTERN = "shard-{:05d}.h5"
SHARD_GLOB = "shard-*.h5"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
TRAIN_TABLE = "train.parquet"
LABELS_TABLE = "labels.parquet"
META_TABLE = "meta.parquet"
TRAIN_FEATHER = "df_trn.fth"
META_FEATHER = "comb.fth"
LABELS_FEATHER = "labels.fth"
REPORT = "report.json"
REPORT_PLOT = "report.png"
MODEL = "model.pt"
LAST = "last.pt"
BEST = "best.pt"
SNAPSHOT = "epoch{}.pt"
METRICS = "metrics.csv"
CURVES = "curves.png"
LR_FIND = "lr_find.csv"
LR_FIND_PLOT = "lr_find.png"
FOLD_DIR = "fold{}"
OOF = "oof.csv"
FOLD_SCORES = "folds.csv"
OOF_SCORES = "oof_scores.json"
OOF_EMBEDDINGS = "oof_embeddings.parquet"
CNN_EPOCH_DIR = "cnn-epoch{}"
SERIES_SCORES = "scores.json"
SHEET = "sheet.png"
TEST_SCORES = "test_scores.json"
SUBMISSION = "submission.csv"


def shard_name(number: int) -> str:
    """The file name of shard ``number``."""
    return SHARD_PATTERN.format(number)


def shard_number(name: str) -> int:
    """The number in a shard's file name (``shard-00012.h5`` -> 12)."""
    return int(Path(name).stem.split("-")[1])


def shards(folder: Path) -> list[Path]:
    """The shard files in ``folder``, in order."""
    return sorted(folder.glob(SHARD_GLOB))


def images(folder: Path) -> list[Path]:
    """The image files in ``folder``, in order of their names."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def is_converted(folder: Path) -> bool:
    """Whether ``folder`` holds convert's output (shards or image files) rather than DICOMs."""
    if not folder.is_dir():
        return False
    return (folder / SETTINGS).is_file() or bool(shards(folder)) or any(
        p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()
    )

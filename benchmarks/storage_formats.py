"""Bytes per image, write speed, random reads and DataLoader throughput of every output format.

One run converts the same slices (the real RSNA samples in ../shared/data/rsna copied to --n
files, or phantoms when absent) to a PNG folder, a JPEG folder and HDF5 shards with each codec,
then reads them back: single random reads, and a full shuffled epoch through a torch
DataLoader with 2 workers, as training would. Medians of --repeats epochs.

    python benchmarks/storage_formats.py --n 2000
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from slices import make_inputs

from ichprep.convert import Options, convert
from ichprep.convert.run.budget import disk_usage
from ichprep.settings import Settings

FORMATS = [
    ("PNG folder", Settings(format="png")),
    ("JPEG folder (q95, 4:4:4)", Settings(format="jpg")),
    ("HDF5 lzf", Settings(format="hdf5", codec="lzf")),
    ("HDF5 gzip-4", Settings(format="hdf5", codec="gzip")),
    ("HDF5 blosc lz4", Settings(format="hdf5", codec="blosc")),
    ("HDF5 blosc zstd-3 (default)", Settings(format="hdf5", codec="zstd")),
    ("HDF5 png bytes", Settings(format="hdf5", codec="png")),
    ("HDF5 jpeg bytes (q95)", Settings(format="hdf5", codec="jpeg")),
]


def loader_rate(folder: Path, repeats: int, workers: int = 2, batch: int = 64) -> float:
    """Images per second of shuffled epochs through a DataLoader with persistent workers, as training
    uses it (median of ``repeats``, after a first epoch that starts the workers)."""
    import torch
    from torch.utils.data import DataLoader

    from ichprep.data.dataset import make_dataset
    from ichprep.store import open_store

    source = open_store(folder)
    dataset = make_dataset(source, list(source.ids), None)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=True,
                        generator=torch.Generator().manual_seed(0))
    rates = []
    for epoch in range(repeats + 1):
        start = time.perf_counter()
        count = sum(len(images) for images, _ in loader)
        if epoch:
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def random_read_ms(folder: Path, reads: int = 300) -> float:
    """Median milliseconds to read one random image (file handles kept open, as in a worker)."""
    from ichprep.store import open_store

    source = open_store(folder)
    picks = [random.randrange(len(source)) for _ in range(reads)]
    times = []
    for index in picks:
        start = time.perf_counter()
        source.read(index)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    random.seed(0)
    work = Path(tempfile.mkdtemp(prefix="ichprep-storage-"))
    try:
        make_inputs(work, args.n)
        rows = []
        for name, settings in FORMATS:
            out = work / "out" / name.split()[0] / (settings.codec if settings.format == "hdf5" else settings.format)
            opts = settings, Options(jobs=2, quiet=True, shard_size=1000)
            start = time.perf_counter()
            convert(work / "in", out, *opts)
            write = args.n / (time.perf_counter() - start)
            data_bytes = disk_usage(out) - sum(
                disk_usage(out / f) for f in ("manifest.parquet", "ichprep.json", "index.parquet") if (out / f).exists()
            )
            rows.append((name, data_bytes / args.n, write, random_read_ms(out), loader_rate(out, args.repeats)))
        png_bytes, png_rate = rows[0][1], rows[0][4]
        print(f"{args.n} real 512 px slices -> 256 px RGB; DataLoader: 2 workers, batch 64, shuffled, warm page cache")
        print("| format | KB/image | vs PNG size | write img/s (2 jobs) | random read ms | loader img/s | vs PNG loader |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, per_image, write, read_ms, rate in rows:
            cells = [name, f"{per_image / 1000:.1f}", f"{per_image / png_bytes:.2f}", f"{write:.0f}", f"{read_ms:.3f}", f"{rate:.0f}",
                     f"{rate / png_rate:.1f}x"]
            print("| " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

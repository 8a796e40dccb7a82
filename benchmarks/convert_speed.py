"""ichprep convert against the plain pydicom + OpenCV loop of the public kernels, in one run.

The slices are the real RSNA files in ../shared/data/rsna (or `ichprep synth` phantoms when
that folder is absent), copied under new names to --n files in a temporary folder and read
once so every contender starts from a warm page cache. Each contender converts the same
files to the same format at 256 px; the median of --repeats runs is reported.

    python benchmarks/convert_speed.py --n 1000 --repeats 3 [--out-root /dev/shm]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom
from slices import make_inputs

from ichprep.convert import Options, convert
from ichprep.settings import Settings

WINDOWS = ((40, 80), (80, 200), (600, 2800))


def plain_loop(files: list[Path], out: Path, ext: str) -> None:
    """What the public kernels do: float HU, three float windows at full size, resize, imwrite."""
    for path in files:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        channels = [np.clip((hu - (level - width / 2)) / width, 0, 1) for level, width in WINDOWS]
        image = (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)
        image = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"{path.stem}.{ext}"), image)


def timed(run, repeats: int, root: str | None) -> float:
    """Median seconds of ``repeats`` runs of ``run(out_folder)`` into fresh folders under ``root``."""
    times = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="ichprep-bench-", dir=root))
        try:
            start = time.perf_counter()
            run(out)
            times.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="slices per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-root", default=None, help="where outputs are written (default: the temp folder); "
                        "a tmpfs such as /dev/shm takes the file system's cost per created file out of the comparison")
    args = parser.parse_args()
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="ichprep-bench-in-"))
    try:
        files = make_inputs(work, args.n)
        src = work / "in"
        rows = []
        for fmt in ("jpg", "png"):
            plain = timed(lambda out: plain_loop(files, out, fmt), args.repeats, args.out_root)
            rows.append((f"plain loop, {fmt}, 1 core", plain, plain))
            for crop in (False, True):
                opts = Settings(format=fmt, crop=crop), Options(jobs=1, quiet=True)
                t = timed(lambda out: convert(src, out, *opts), args.repeats, args.out_root)
                rows.append((f"ichprep --jobs 1, {fmt}, {'crop' if crop else 'no crop'}", t, plain))
            t = timed(lambda out: convert(src, out, Settings(format=fmt), Options(jobs=2, quiet=True)), args.repeats, args.out_root)
            rows.append((f"ichprep --jobs 2, {fmt}, crop", t, plain))
        where = args.out_root or tempfile.gettempdir()
        print(f"{args.n} slices of 512 x 512 -> 256 px, median of {args.repeats} runs, warm page cache, output under {where}")
        print(f"{'contender':38s} {'images/s':>10s} {'vs plain loop':>14s}")
        for name, seconds, plain in rows:
            print(f"{name:38s} {args.n / seconds:10.0f} {plain / seconds:13.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

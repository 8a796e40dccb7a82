"""ichprep against what its users would otherwise write: the kernels' pydicom/OpenCV loop and a MONAI pipeline.

All three turn the same slices into 3-channel (brain, subdural, bone) 256 px JPEGs on one
core. Before anything is timed, each peer's output is compared with ichprep's on a few
slices (lossless, no crop, same size) so the race is between programs that make the same
picture. MONAI is optional: without it (``pip install monai --no-deps``) its column is skipped.

    python benchmarks/peers.py --n 300 --repeats 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pydicom
from slices import make_inputs

from ichprep.convert import Options, Settings, convert

WINDOWS = ((40, 80), (80, 200), (600, 2800))
"""(level, width) of the R, G, B channels: ichprep's default brain, subdural, bone."""
SIZE = 256
CHECK_SLICES = 8
MAX_GREY_DIFF = 2

Pipeline = Callable[[list[Path], Path, str], None]


def plain_loop(files: list[Path], out: Path, ext: str) -> None:
    """The public kernels' loop: float HU, three float windows at full size, stack, area resize, imwrite."""
    for path in files:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)  # float64, as the kernels wrote it
        channels = [np.clip((hu - (level - width / 2)) / width, 0, 1) for level, width in WINDOWS]
        image = (np.stack(channels[::-1], axis=-1) * 255).astype(np.uint8)
        cv2.imwrite(str(out / f"{path.stem}.{ext}"), cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA))


def monai_pipeline() -> Pipeline | None:
    """The MONAI transforms a user would chain, or None when MONAI is not installed."""
    try:
        import torch
        from monai.data import PydicomReader
        from monai.transforms import LoadImage, Resize, ScaleIntensityRange
    except ImportError:
        return None
    torch.set_num_threads(1)
    load = LoadImage(reader=PydicomReader(), image_only=True)
    scalers = [
        ScaleIntensityRange(a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0, clip=True) for level, width in WINDOWS
    ]
    resize = Resize(spatial_size=(SIZE, SIZE), mode="area")

    def run(files: list[Path], out: Path, ext: str) -> None:
        for path in files:
            hu = load(str(path))  # (x, y): PydicomReader swaps the axes to MONAI's convention
            image = resize(torch.stack([scale(hu) for scale in scalers]))
            rgb = (image.permute(2, 1, 0) * 255).round().to(torch.uint8).numpy()
            cv2.imwrite(str(out / f"{path.stem}.{ext}"), np.ascontiguousarray(rgb[..., ::-1]))

    return run


def ichprep_pipeline(crop: bool) -> Pipeline:
    """``ichprep convert`` on one core, from the folder holding the files."""

    def run(files: list[Path], out: Path, ext: str) -> None:
        result = convert(files[0].parent, out, Settings(format=ext, crop=crop), Options(jobs=1, quiet=True))
        assert result.failed == 0, result.failures[:3]

    return run


def agreement(files: list[Path], pipelines: dict[str, Pipeline], work: Path) -> dict[str, int]:
    """Largest per-pixel grey-level difference of each peer from ichprep (PNG, no crop) on a few slices."""
    sample_dir = work / "check-in"
    sample_dir.mkdir()
    sample = [Path(shutil.copy(p, sample_dir / p.name)) for p in files[:CHECK_SLICES]]
    outputs = {}
    for name, run in pipelines.items():
        out = work / f"check-{len(outputs)}"
        out.mkdir()
        run(sample, out, "png")
        outputs[name] = [cv2.imread(str(out / f"{p.stem}.png"), cv2.IMREAD_COLOR).astype(int) for p in sample]
    reference = outputs.pop("ichprep")
    return {name: max(int(np.abs(a - b).max()) for a, b in zip(images, reference)) for name, images in outputs.items()}


def timed(run: Pipeline, files: list[Path], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` runs into fresh folders.

    Every contender runs in this process on one thread, so CPU time is its whole cost and,
    unlike wall time, barely moves when other programs share the machine.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="ichprep-peers-"))
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            run(files, out, "jpg")
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="slices per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; the median is reported")
    args = parser.parse_args()
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    cv2.setNumThreads(1)
    monai = monai_pipeline()
    work = Path(tempfile.mkdtemp(prefix="ichprep-peers-in-"))
    try:
        files = make_inputs(work, args.n)
        peers: dict[str, Pipeline] = {"plain loop (pydicom + OpenCV)": plain_loop}
        if monai is not None:
            peers["MONAI (LoadImage + ScaleIntensityRange + Resize)"] = monai
        else:
            print("MONAI is not installed: its column is skipped (pip install monai --no-deps)")
        diffs = agreement(files, {"ichprep": ichprep_pipeline(crop=False), **peers}, work)
        for name, diff in diffs.items():
            print(f"agreement with ichprep --no-crop (PNG, {CHECK_SLICES} slices): {name}: max {diff} grey levels")
            if diff > MAX_GREY_DIFF:
                raise SystemExit(f"{name} does not make the same images (max difference {diff}); not timing it")

        contenders = {
            "ichprep --jobs 1 --no-crop": ichprep_pipeline(crop=False),
            "ichprep --jobs 1 (crop)": ichprep_pipeline(crop=True),
            **peers,
        }
        seconds = {name: timed(run, files, args.repeats) for name, run in contenders.items()}
        base_wall, base_cpu = seconds["ichprep --jobs 1 --no-crop"]
        print(f"\n{args.n} slices 512 x 512 -> {SIZE} px JPEG, 1 core, median of {args.repeats} runs, warm page cache")
        print(f"{'contender':50s} {'images/s':>9s} {'images/CPU-s':>13s} {'ichprep is (wall, CPU)':>24s}")
        for name, (wall, cpu) in seconds.items():
            print(f"{name:50s} {args.n / wall:9.1f} {args.n / cpu:13.1f} {wall / base_wall:11.1f}x {cpu / base_cpu:10.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

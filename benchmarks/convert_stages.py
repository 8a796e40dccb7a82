"""Milliseconds of CPU per slice for each stage of ``convert``'s worker, in isolation.

The worker does, per input: read the bytes, ``dicom.read`` (parse + header row), ``decode``,
``pixel_stats``, ``Renderer.render`` (also timed with OpenCV resampling in place of the C
kernel, as where it was not compiled) and the image encoding. Each stage runs over the same
slices (the real RSNA files in ../shared/data/rsna, or ``ichprep synth`` phantoms) on inputs
prepared by the stage before, in one process on one thread; the figure is the median over
--repeats passes of CPU time (steadier than wall time on a shared machine) per slice.

Two more rows time the worker's own loop (``worker.run`` writing JPEGs, crop and no
crop), where the stages share caches and the allocator with each other and with the sink, as
they do in a run.

With --baseline PATH (another checkout, e.g. a git worktree of main) the measurement runs
alternately in a process importing that tree and in one importing this one, --rounds times,
and medians of both are printed side by side.

    python benchmarks/convert_stages.py [--baseline ../main] [--rounds 5] [--out-root /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slices import make_inputs, make_zip

SLICES = 56


def per_slice(fn: Callable[[Any], Any], items: list, repeats: int) -> tuple[float, list]:
    """(median CPU ms per item over ``repeats`` passes, the results of one more pass).

    Timed passes drop each result at once, as the worker does: keeping 56 half-megabyte results
    alive would make every allocation fresh memory and charge its page faults to the stage.
    """
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            fn(item)
        times.append((time.process_time() - start) / len(items) * 1e3)
    return statistics.median(times), [fn(item) for item in items]


def measure(folder: Path, repeats: int, out_root: str | None = None) -> dict[str, float]:
    """CPU ms per slice of every stage, in the order the worker runs them."""
    import cv2

    from ichprep.convert.read import dicom
    from ichprep.convert.render.renderer import Renderer
    from ichprep.store.images import encode_bgr
    from ichprep.windows import parse_windows

    cv2.setNumThreads(1)
    paths = sorted((folder / "in").glob("*.dcm"))
    members = zipfile.ZipFile(folder / "in.zip")
    channels = parse_windows("brain,subdural,bone")
    crop, whole = Renderer(channels, 256, True), Renderer(channels, 256, False)
    ms: dict[str, float] = {}
    ms["read file"], datas = per_slice(lambda p: p.read_bytes(), paths, repeats)
    ms["read zip member (zipfile)"], _ = per_slice(members.read, members.namelist(), repeats)
    ms["dicom.read (parse + header row)"], reads = per_slice(dicom.read, datas, repeats)
    ms["decode"], slices = per_slice(lambda r: r.decode(), reads, repeats)
    ms["pixel_stats"], _ = per_slice(lambda s: dicom.pixel_stats(s.raw, s.slope, s.intercept), slices, repeats)
    ms["render, crop (256 px)"], images = per_slice(lambda s: crop.render(s, bgr=True), slices, repeats)
    ms["  of which the crop square"], _ = per_slice(crop.square, slices, repeats)
    ms["  the same with OpenCV resampling"] = without_kernel(lambda: per_slice(lambda s: crop.render(s, bgr=True), slices, repeats)[0])
    ms["render, no crop (512 -> 256)"], _ = per_slice(lambda s: whole.render(s, bgr=True), slices, repeats)
    ms["  no crop with OpenCV resampling"] = without_kernel(lambda: per_slice(lambda s: whole.render(s, bgr=True), slices, repeats)[0])
    ms["encode JPEG q95 4:4:4"], _ = per_slice(lambda i: encode_bgr(i, "jpg"), images, repeats)
    ms["encode PNG"], _ = per_slice(lambda i: encode_bgr(i, "png"), images, repeats)
    ms["worker loop (worker.run), JPEG crop"] = worker_loop(folder, True, repeats, out_root)
    ms["worker loop (worker.run), JPEG no crop"] = worker_loop(folder, False, repeats, out_root)
    ms["worker stages, JPEG crop (sum)"] = sum(ms[k] for k in ("read file", "dicom.read (parse + header row)", "decode", "pixel_stats",
                                                              "render, crop (256 px)", "encode JPEG q95 4:4:4"))
    return ms


def without_kernel(timed: Callable[[], float]) -> float:
    """``timed()`` with the renderer resampling by OpenCV, as where the C kernel was not compiled."""
    from ichprep.convert.render import renderer

    kernel, renderer._area = renderer._area, None
    try:
        return timed()
    finally:
        renderer._area = kernel


def worker_loop(folder: Path, crop: bool, repeats: int, out_root: str | None) -> float:
    """Median CPU ms per slice of the worker's task loop over the slices, writing JPEGs into a scratch folder under ``out_root``."""
    from ichprep.convert import sources
    from ichprep.convert.run.worker import Job, Task, run
    from ichprep.store.images import ImageFiles
    from ichprep.windows import parse_windows

    source = sources.open_source(folder / "in")
    inputs = source.inputs()
    with tempfile.TemporaryDirectory(dir=out_root) as out:
        job = Job(source, tuple(parse_windows("brain,subdural,bone")), 256, crop, ImageFiles(out, "jpg"))
        ms, _ = per_slice(lambda batch: run(job, Task(tuple(batch))), [inputs], repeats)
    return ms / len(inputs)


def run_in(tree: str | None, folder: Path, repeats: int, out_root: str | None) -> dict[str, float]:
    """``measure`` in a fresh process importing ``tree`` (or the installed ichprep)."""
    env = dict(os.environ, PYTHONPATH=tree) if tree else None
    code = f"import sys, json; sys.path.insert(1, {str(Path(__file__).parent)!r}); import convert_stages as m; " \
           f"print(json.dumps(m.measure(m.Path({str(folder)!r}), {repeats}, {out_root!r})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=folder, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="passes over the slices per stage in one process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per tree, alternating")
    parser.add_argument("--baseline", default=None, help="another ichprep checkout to measure beside this one")
    parser.add_argument("--phantoms", action="store_true", help="ichprep synth phantoms even when the real slices are present")
    parser.add_argument("--out-root", default=None, help="where the worker loop writes its images (default: the temp folder); "
                        "a tmpfs such as /dev/shm takes the file system's cost per created file out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ichprep-stages-") as tmp:
        folder = Path(tmp)
        make_zip(make_inputs(folder, SLICES, phantoms=args.phantoms), folder / "in.zip")
        trees = {"baseline": args.baseline, "this tree": None} if args.baseline else {"this tree": None}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                results[name].append(run_in(tree, folder, args.repeats, args.out_root))
    stages = list(results["this tree"][0])
    print(f"CPU ms per slice, {SLICES} slices, median of {args.rounds} processes x {args.repeats} passes")
    print(f"{'stage':36s}" + "".join(f"{name:>12s}" for name in trees))
    for stage in stages:
        cells = [statistics.median(r[stage] for r in results[name]) for name in trees]
        print(f"{stage:36s}" + "".join(f"{c:12.3f}" for c in cells))


if __name__ == "__main__":
    main()

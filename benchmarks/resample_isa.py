"""Milliseconds a slice of each way to downscale a cropped slice: the kernel's instruction sets and OpenCV.

Why: the compiled kernel (``ichprep/convert/render/_area.c``) keeps an AVX2 form beside SSE2 only because
it pays; this measures each on the renderer's own cases (a head-sized crop of a 512 px slice to 256
px, and the whole slice) in one run, interleaved, medians of --repeats, and OpenCV's backend beside
them, so the ratios hold on a noisy machine.

    python benchmarks/resample_isa.py
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from ichprep.convert.render import resample

CASES = {"head crop 430 -> 256": (40, 41, 430), "whole slice 512 -> 256": (0, 0, 512), "tight crop 380 -> 256": (60, 50, 380)}


def slice_and_table(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, noisy 512 x 512 12-bit slice and a table of random 8.8 words for its 65,536 values."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:512, :512]
    raw = (1000 + 40 * np.sin(yy / 9) + 30 * np.cos(xx / 7) + rng.normal(0, 20, (512, 512))).astype(np.uint16)
    return raw, rng.integers(0, 2**63, 65536, dtype=np.uint64)


def timed(run, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls * 1e3


def one(way: int | None, raw: np.ndarray, table: np.ndarray, square: tuple[int, int, int], out: np.ndarray) -> None:
    """One downscale to 256 px: OpenCV's backend (``way`` None) or the kernel's instruction set ``way``."""
    if way is None:
        resample.BACKENDS["opencv"].resample(raw, table, 0, square, 256, 3)
    else:
        resample._area.area_isa(way, raw, table, 0, *square, 256, 3, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50, help="calls per timing")
    args = parser.parse_args()
    raw, table = slice_and_table()
    out = np.empty((256, 256, 3), np.uint8)
    area = resample._area
    ways = {"OpenCV": None}
    if area is not None:
        ways.update({resample.Kernel.ISAS.get(isa, "plain C"): isa for isa in range(area.best_isa() + 1)})
    print(f"{'case':<26}" + "".join(f"{w:>10}" for w in ways) + f"   ms a slice, median of {args.repeats}")
    for case, (y0, x0, side) in CASES.items():
        square = resample.geometry.Square(y0, x0, side)
        times: dict[str, list[float]] = {w: [] for w in ways}
        for _ in range(args.repeats):
            for way, isa in ways.items():
                times[way].append(timed(partial(one, way=isa, raw=raw, table=table, square=square, out=out), args.calls))
        print(f"{case:<26}" + "".join(f"{np.median(t):>10.3f}" for t in times.values()))


if __name__ == "__main__":
    main()

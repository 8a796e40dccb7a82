"""JPEG quality against the lossless PNG output: PSNR per window channel and size, 4:4:4 vs 4:2:0.

The slices (the real RSNA samples, or phantoms when ../shared/data/rsna is absent) are
converted to PNG with the default settings; each image is then JPEG-encoded at several
qualities and chroma samplings, decoded, and compared channel by channel with the PNG
(R = brain, G = subdural, B = bone). Chroma subsampling mixes the three windows, so its
damage shows per channel, not in an overall PSNR.

    python benchmarks/jpeg_quality.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from slices import make_inputs

from ichprep.convert import Options, convert
from ichprep.convert.run.ladder import psnr

QUALITIES = (75, 85, 90, 95, 100)
CHANNELS = ("brain (R)", "subdural (G)", "bone (B)")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ichprep-jpeg-"))
    try:
        make_inputs(work, 56)
        convert(work / "in", work / "png", options=Options(jobs=1, quiet=True))
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted((work / "png").glob("*.png"))]
        png_kb = np.mean([p.stat().st_size for p in (work / "png").glob("*.png")]) / 1000
        print(f"{len(images)} real slices, 256 px; PNG {png_kb:.1f} KB/image. PSNR in dB against the PNG (median over images).")
        print("| quality | sampling | KB/image | " + " | ".join(CHANNELS) + " |")
        print("|---:|---|---:|" + "---:|" * len(CHANNELS))
        for quality in QUALITIES:
            for name, factor in (("4:4:4", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444), ("4:2:0", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)):
                params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor]
                sizes, scores = [], []
                for bgr in images:
                    data = cv2.imencode(".jpg", bgr, params)[1]
                    back = cv2.imdecode(data, cv2.IMREAD_COLOR)
                    sizes.append(len(data))
                    scores.append([psnr(bgr[..., 2 - c], back[..., 2 - c]) for c in range(3)])
                medians = np.median(np.array(scores), axis=0)
                print(f"| {quality} | {name} | {np.mean(sizes) / 1000:.1f} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

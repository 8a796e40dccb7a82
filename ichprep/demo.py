"""The built-in main job: phantom CTs -> converted images -> cleaned metadata -> contact sheet.

The real data cannot be downloaded by the tool, so a newcomer sees the whole pipeline work on
synthetic head CTs (with the real data's header quirks) in well under a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ichprep.convert.pipeline import Options, Result, convert
from ichprep.meta.table import clean_meta
from ichprep.paths import output_folder
from ichprep.plots.sheet import contact_sheet
from ichprep.synth import generate


def run_demo(out: Path, n: int = 300, seed: int = 0, jobs: int | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run every data stage into ``out``; returns the convert result, the cleaning report and the paths."""
    output_folder(Path(out), "OUT")
    raw = generate(out / "raw", n=n, seed=seed, progress=not quiet)
    result: Result = convert(raw / "stage_1_train_images", out / "images", options=Options(jobs=jobs, quiet=quiet))
    report = clean_meta(out / "images", raw / "stage_1_train.csv", out / "meta", jobs=jobs, quiet=quiet)
    contact_sheet(out / "images", out / "meta" / "train.parquet", out / "sheet.png", per_subtype=4, seed=seed)
    return {
        "convert": result,
        "report": report,
        "raw": raw,
        "images": out / "images",
        "meta": out / "meta",
        "sheet": out / "sheet.png",
    }

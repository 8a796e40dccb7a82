"""Raw DICOMs given to predict: rendered with the model's own settings into a temporary folder that every exit removes."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ichprep.errors import BudgetError, IchprepError
from ichprep.settings import Settings

TEMP_PREFIX = ".ichprep-predict-"
"""Raw DICOMs are converted into ``<TEMP_PREFIX><pid>-<random>``; a later predict removes one whose process is dead."""
STALE_TEMP = re.compile(rf"^{re.escape(TEMP_PREFIX)}(\d+)-")


def convert_dicoms(src: str | Path, out: Path, settings: Settings, quiet: bool = True, headers: tuple[str, ...] = ()) -> Path:
    """Render DICOMs (a path, a zip's URL with ``headers``, ``kaggle://`` or ``-``) into ``out`` with the model's own settings.

    The settings carry their resolved channels, so the fastai preset reuses the training data's
    histogram breakpoints instead of estimating new ones from the test images.
    """
    from ichprep.convert import Options, convert

    try:
        result = convert(src, out, settings, Options(quiet=quiet, headers=headers))
    except BudgetError as err:
        if err.estimate is None:
            raise
        raise IchprepError(f"DATA's DICOMs are converted into a temporary folder in {out.parent} first and would not fit there "
                           f"({err.estimate.describe()}); set TMPDIR to a folder with more room, or convert them with "
                           "'ichprep convert' and give predict that folder") from None
    if not result.converted:
        raise IchprepError(f"DATA {src}: none of its DICOMs could be converted")
    return out


def scratch_folder(near: Path | None = None) -> Path:
    """Where predict converts raw DICOMs: ``$TMPDIR`` when set, else beside the submission (``near``), else the system's temporary folder.

    Beside the submission is on a disk the user chose for output; the system's temporary folder
    is often a small RAM disk, too small for a test set.
    """
    if os.environ.get("TMPDIR") or near is None:
        return Path(tempfile.gettempdir())
    return Path(near)


def temporary_folder(stack: ExitStack, where: Path) -> Path:
    """A new folder in ``where``, removed when ``stack`` closes however it closes; dead runs' ones are removed first."""
    from ichprep.convert.run.parallel import clear_stale

    clear_stale([where], STALE_TEMP)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=where))
    stack.callback(shutil.rmtree, tmp, True)
    return tmp

"""What a conversion was made with (``OUT/ichprep.json``): read by convert, train and predict alike.

Kept apart from the conversion pipeline so that the training side can learn how its images were
made without importing the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SETTINGS = "ichprep.json"


def load_settings(out: Path | str) -> dict[str, Any]:
    """The settings a conversion into ``out`` was made with (``OUT/ichprep.json``); {} when none."""
    path = Path(out) / SETTINGS
    return json.loads(path.read_text()) if path.exists() else {}

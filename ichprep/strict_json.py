"""JSON that every parser accepts: an undefined number (an AUC of a label with one class) is null.

Python's ``json.dumps`` writes NaN as the bare word ``NaN``, which is not JSON: ``jq``, JavaScript
and strict parsers reject the whole document. Scores go through here before they are printed or saved.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (in nested dicts and lists) replaced by None."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` of ``value`` with undefined numbers as null; refuses anything else that is not JSON."""
    return json.dumps(finite(value), allow_nan=False, **options)

"""`ichprep evaluate --json` prints strict JSON: an AUC that is undefined (one class only) is null, not NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from cli_run import ichprep

from ichprep import LABELS, strict_json
from tests.ich_fixtures import fabricate, write_folder, write_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def refuse(word: str):
    raise ValueError(f"{word} is not JSON")


def test_evaluate_json_writes_null_for_an_undefined_auc(tmp_path):
    ids, images, labels, _ = fabricate(20, seed=1, size=32)
    labels[:, LABELS.index("epidural")] = 0  # one class only: its AUC is undefined
    data = write_folder(tmp_path / "img", ids, images)
    model = write_model(tmp_path / "run" / "model.pt", data)
    table = pd.DataFrame(labels, columns=list(LABELS)).assign(SOPInstanceUID=ids)
    table.to_parquet(tmp_path / "labels.parquet")
    done = ichprep("evaluate", model, data, "--labels", tmp_path / "labels.parquet", "--json", "-q", "--workers", "0")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout, parse_constant=refuse)
    assert result["auc"]["epidural"] is None
    assert all(isinstance(result["auc"][name], float) for name in LABELS if name != "epidural")
    table_done = ichprep("evaluate", model, data, "--labels", tmp_path / "labels.parquet", "-q", "--workers", "0")
    assert table_done.stdout.startswith("weighted log loss ") and "epidural" in table_done.stdout


def test_strict_json_replaces_every_undefined_number():
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": np.float64("nan"), "e": 2}
    assert json.loads(strict_json.dumps(value), parse_constant=refuse) == {"a": None, "b": [1.0, None, {"c": None}], "d": None, "e": 2}

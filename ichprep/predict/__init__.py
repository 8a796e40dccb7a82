"""Inference: trained model.pt files applied to convert's output or to DICOMs, and the results scored.

``predict`` averages model files (single CNNs, fold ensembles, two-stage models) over DATA, with
test-time views (``tta``); ``evaluate`` scores a prediction against labels; ``submission`` makes
the competition's CSV table. It reads models through ``ichprep.models`` and images through
``ichprep.store`` and ``ichprep.data``, and never imports ``ichprep.train``: applying a model
needs nothing of how it was trained.
"""

from ichprep.predict.evaluate import evaluate
from ichprep.predict.predict import Predictions, predict
from ichprep.predict.submission import submission

__all__ = ["Predictions", "evaluate", "predict", "submission"]

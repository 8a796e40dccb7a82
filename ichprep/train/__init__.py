"""Training and inference on convert's output: the only part of ichprep that imports torch.

``train`` runs the loop (alone or under torchrun), ``lr_find`` the learning-rate range test,
``predict``/``evaluate`` apply a saved ``model.pt`` to converted images or raw DICOMs.
"""

from ichprep.train.config import TrainConfig
from ichprep.train.folds import train_folds
from ichprep.train.loop import train
from ichprep.train.lr_find import lr_find
from ichprep.train.predict import Predictions, evaluate, predict, submission

__all__ = ["Predictions", "TrainConfig", "evaluate", "lr_find", "predict", "submission", "train", "train_folds"]

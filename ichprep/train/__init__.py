"""Training on convert's output: the loop (alone or under torchrun), K-fold runs and the learning-rate range test.

``train`` runs the loop, ``train_folds`` K patient-grouped folds and their ensemble, ``lr_find``
the learning-rate range test. Applying a saved ``model.pt`` is ``ichprep.predict``.
"""

from ichprep.train.config import TrainConfig
from ichprep.train.folds import train_folds
from ichprep.train.loop import train
from ichprep.train.lr_find import lr_find

__all__ = ["TrainConfig", "lr_find", "train", "train_folds"]

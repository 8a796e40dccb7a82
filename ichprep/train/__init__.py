"""Training on convert's output: the CNN trainer (alone or under torchrun), K-fold runs, the learning-rate range test,
and the one engine under them and the second stage.

``train`` runs one CNN, ``train_folds`` K patient-grouped folds and their ensemble, ``fit`` whichever
a ``TrainConfig`` asks for; ``lr_find.lr_find`` is the learning-rate range test (its module's name, so
it is imported from there). ``options`` turns the command
line's values into a ``TrainConfig`` and ``recipes`` holds the published configurations; both, like
``config`` and ``schedule``'s names, import no torch, so a mistake is refused before torch loads.
The names below are imported on first use. Applying a saved ``model.pt`` is ``ichprep.predict``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ichprep.train.cnn import train
    from ichprep.train.config import TrainConfig
    from ichprep.train.folds import fit, train_folds

LAZY = {"TrainConfig": "config", "train": "cnn", "train_folds": "folds", "fit": "folds"}
__all__ = ["TrainConfig", "fit", "train", "train_folds"]


def __getattr__(name: str) -> Any:
    """A public name from its module, imported when first asked for."""
    if name in LAZY:
        from importlib import import_module

        return getattr(import_module(f"ichprep.train.{LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

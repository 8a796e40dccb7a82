"""The options of a training run (`ichprep train`, `lr-find`), one to one with the command's flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ichprep.errors import IchprepError
from ichprep.models.pretrained import RANDOM, Start

RESUME_KEYS: tuple[str, ...] = (
    "arch", "epochs", "batch_size", "lr", "wd", "sizes", "stage_epochs", "neighbours", "stack", "seed", "max_images",
    "freeze_epochs", "lr_mult", "norm", "folds", "fold", "optimizer", "schedule", "augment", "flips", "rotate", "scale",
    "shift", "affine_p", "accumulate", "neg_ratio",
)
"""Settings a resumed run must share with the run it continues (else it would not be the same run)."""


@dataclass
class TrainConfig:
    """The options of `ichprep train`, one to one; ``workers=None`` picks them from the device (``data.workers.loader_workers``).

    ``start`` is where the weights come from (``models.pretrained.resolve``, run before any work);
    None resolves it from ``arch``, ``weights`` and ``pretrained`` when training starts.
    ``freeze_epochs=None`` means 1 when the run starts from trained weights (fastai's
    ``fine_tune``: the new head learns before it can disturb the body) and 0 from random ones.
    ``norm`` is ``auto`` (the pretrained config's mean and std with trained weights, the data's
    otherwise), ``pretrained`` or ``data``; ``mean``/``std`` are its per-channel values once resolved.
    ``folds``/``fold``: K patient-grouped folds, and the one of them this run trains; ``train_folds`` the
    folds a ``--folds`` run trains and its ensemble averages (all when empty).
    ``neg_ratio``: None trains on the label table's rows as given; R draws R negatives per positive
    afresh each epoch from every labelled image of the training patients (inf: all of them).
    ``flips``, ``rotate``, ``scale``, ``shift``, ``affine_p``: the augmentation (``augment.AugmentOptions``).
    ``accumulate``: batches whose gradients add up to one optimizer step (a recipe's batch on a smaller GPU).
    ``snapshots``: keep every epoch's model record (RUN/epoch<N>.pt) for a second stage that embeds several.
    """

    data: Path
    out: Path
    labels: Path | None = None
    arch: str = "resnet18"
    weights: Path | None = None
    pretrained: bool = True
    start: Start | None = None
    freeze_epochs: int | None = None
    lr_mult: float = 100.0
    norm: str = "auto"
    stack: str = "windows"
    folds: int | None = None
    fold: int | None = None
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    wd: float = 1e-2
    sizes: tuple[int, ...] = ()
    stage_epochs: tuple[int, ...] = ()
    val_frac: float | None = None
    seed: int = 42
    workers: int | None = None
    resume: bool = False
    neighbours: int = 0
    device: str = "auto"
    quiet: bool = False
    max_images: int | None = None
    clip: float = 1.0
    augment: bool = True
    stop_after: int | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    compile: bool = False
    optimizer: str = "adamw"
    schedule: str = "one-cycle"
    flips: tuple[str, ...] = ("hflip", "vflip")
    rotate: float = 15.0
    scale: float = 0.1
    shift: float = 0.05
    affine_p: float = 1.0
    accumulate: int = 1
    neg_ratio: float | None = None
    train_folds: tuple[int, ...] = ()
    snapshots: bool = False

    def frozen_epochs(self) -> int:
        """Epochs that train the head alone (the body's learning rate is 0 during them)."""
        if self.freeze_epochs is not None:
            return self.freeze_epochs
        if self.start is not None:
            return 0 if self.start.kind == RANDOM else 1
        return 1 if self.weights is not None or self.pretrained else 0

    def views(self) -> list[str]:
        """The views training draws, which are the views TTA may average over: the flips, when it augments."""
        return list(self.flips) if self.augment else []

    def folds_trained(self) -> list[int]:
        """The folds a ``--folds`` run trains and averages: ``train_folds``, else every one."""
        return list(self.train_folds) if self.train_folds else list(range(self.folds or 0))

    def stages(self) -> list[int | None]:
        """The image size of every epoch: progressive resizing, or None (stored size) throughout."""
        if not self.sizes:
            return [None] * self.epochs
        counts = list(self.stage_epochs)
        if not counts:
            base, extra = divmod(self.epochs, len(self.sizes))
            counts = [base + (k < extra) for k in range(len(self.sizes))]
        if len(counts) != len(self.sizes):
            raise IchprepError(f"--stage-epochs has {len(counts)} entries for {len(self.sizes)} --sizes")
        return [s for s, n in zip(self.sizes, counts) for _ in range(n)]

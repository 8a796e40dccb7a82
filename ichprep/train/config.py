"""The options of a training run (`ichprep train`, `lr-find`), one to one with the command's flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ichprep.errors import IchprepError
from ichprep.train.dataset import MEAN, STD

RESUME_KEYS: tuple[str, ...] = ("arch", "epochs", "batch_size", "lr", "wd", "sizes", "stage_epochs", "neighbours", "seed", "max_images")
"""Settings a resumed run must share with the run it continues (else it would not be the same run)."""


@dataclass
class TrainConfig:
    """The options of `ichprep train`, one to one; ``workers=None`` picks them from the device (``loaders.loader_workers``)."""

    data: Path
    out: Path
    labels: Path | None = None
    arch: str = "resnet18"
    weights: Path | None = None
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
    mean: float = MEAN
    std: float = STD
    compile: bool = False

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

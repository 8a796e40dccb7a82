"""The one training engine under both stages: the epoch loop, checkpoints and their resume keys, metrics, curves,
``--stop-after`` and the choice of the best epoch, with callbacks for what a trainer adds.

The shape is fastai's Learner and Lightning's Trainer: a trainer supplies a ``Task`` (what one
epoch trains, what validation predicts, the state to keep), the engine runs it. Per epoch it
writes one row of ``metrics.csv`` (the competition metric and per-label diagnostics of the
validation), redraws ``curves.png``, saves ``last.pt`` (and ``best.pt`` at the best validation
score) atomically, lets the callbacks act (save the model record of the best epoch, keep
snapshots, keep a bag of epochs) and prints one line. A resumed run must share its ``resume_keys``
with the run it continues, else it would not be the same run; every epoch is a pure function of
(seed, epoch), so a run stopped and resumed ends where an uninterrupted one does.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ichprep import layout
from ichprep.errors import IchprepError
from ichprep.metrics import summary
from ichprep.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SHOWN: tuple[str, ...] = ("epoch", "size", "train_loss", "val_wll")
"""The columns of a metrics row an epoch's line prints (size only where the run resizes)."""


def metrics_row(epoch: int, lr: float, train_loss: float, y: np.ndarray | None, p: np.ndarray | None, **extra) -> dict:
    """One line of metrics.csv: epoch, the trainer's extra columns, lr, train loss and the validation diagnostics."""
    row: dict = {"epoch": epoch + 1, **extra, "lr": lr, "train_loss": train_loss}
    if y is None or p is None or not len(y):
        return row
    s = summary(y, p)
    row["val_wll"] = s["weighted_log_loss"]
    for key, prefix in (("log_loss", "val_logloss"), ("auc", "val_auc"), ("accuracy", "val_acc")):
        row.update({f"{prefix}_{name}": value for name, value in s[key].items()})
    return row


def epoch_line(row: dict) -> str:
    """How an epoch is printed: ``epoch=3 size=128 train_loss=0.4565 val_wll=0.5491`` (what is not there is left out)."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k in SHOWN and v is not None)


class Task(Protocol):
    """What a trainer gives the engine: its epoch, its validation and its state."""

    def begin_epoch(self, epoch: int, first: bool) -> None:
        """Before epoch ``epoch``; ``first`` when it is the first of this call (a fresh start or a resume)."""

    def train_epoch(self, epoch: int) -> float:
        """Train one epoch; the mean training loss."""

    def validate(self, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(labels, probabilities) of the validation on the main process; None without validation."""

    def lr(self) -> float:
        """The highest learning rate of the optimizer now (metrics.csv's lr)."""

    def columns(self, epoch: int) -> dict:
        """The trainer's own columns of an epoch's metrics row (the image size, for one)."""

    def state(self) -> dict:
        """The model's, optimizer's and loss scaler's state dicts, by those names."""

    def restore(self, ckpt: Checkpoint) -> list[str]:
        """Load a checkpoint's states; lines to say about the resume."""


class Callback:
    """Something a trainer adds after each epoch; ``extra`` is its state kept in the checkpoint."""

    def after_epoch(self, engine: Engine, epoch: int, row: dict, is_best: bool) -> None:
        """After the epoch's metrics are written, before its checkpoint is."""

    def extra(self) -> dict:
        return {}

    def restore(self, extra: dict) -> None:
        """Take back what ``extra`` gave."""


@dataclass
class Engine:
    """Runs a Task for ``epochs`` epochs into ``out``; ``config`` is the run's options as plain values."""

    out: Path
    epochs: int
    marker: str
    config: dict
    resume_keys: tuple[str, ...]
    say: Callable[[str], None]
    resume: bool = False
    stop_after: int | None = None
    main: bool = True
    world: int = 1
    sync: Callable[[], None] = lambda: None
    callbacks: Sequence[Callback] = ()
    history: list[dict] = field(default_factory=list)
    best: float = math.inf
    run: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def finished(self) -> bool:
        return len(self.history) >= self.epochs

    def start(self, task: Task) -> int:
        """The first epoch to train: 0, or the one after last.pt's once its states are back (``--resume``)."""
        if not self.resume:
            return 0
        path = self.out / layout.LAST
        if not path.exists():
            raise IchprepError(f"--resume: no {path} to continue from")
        ckpt = load_checkpoint(path, self.marker)
        changed = [k for k in self.resume_keys if ckpt.config.get(k) != self.config.get(k)]
        if changed:
            raise IchprepError(f"--resume: {path} was made with other settings ({', '.join(changed)}); use the same options")
        self.history, self.best, self.run = list(ckpt.history), float(ckpt.best), ckpt.run or self.run
        for callback in self.callbacks:
            callback.restore(ckpt.extra)
        for line in task.restore(ckpt):
            self.say(line)
        return ckpt.epoch + 1

    def fit(self, task: Task, start: int) -> list[dict]:
        """Train epochs ``start`` to the last (or ``stop_after`` of them); the metrics rows of the whole run."""
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        for epoch in range(start, self.epochs):
            if self.stop_after is not None and epoch - start >= self.stop_after:
                break
            task.begin_epoch(epoch, epoch == start)
            lr = task.lr()
            loss = task.train_epoch(epoch)
            validated = task.validate(epoch)
            if self.main:
                y, p = validated if validated is not None else (None, None)
                self._end_epoch(task, epoch, metrics_row(epoch, lr, loss, y, p, **task.columns(epoch)))
            self.sync()
        return self.history

    def _end_epoch(self, task: Task, epoch: int, row: dict) -> None:
        from ichprep.plots.training import plot_curves

        self.history.append(row)
        score = row.get("val_wll", row["train_loss"])
        is_best = score < self.best
        self.best = min(self.best, score)
        pd.DataFrame(self.history).to_csv(self.out / layout.METRICS, index=False)
        plot_curves(pd.DataFrame(self.history), self.out / layout.CURVES)
        for callback in self.callbacks:
            callback.after_epoch(self, epoch, row, is_best)
        extra = {k: v for callback in self.callbacks for k, v in callback.extra().items()}
        ckpt = Checkpoint(format=self.marker, epoch=epoch, best=self.best, history=self.history, config=self.config,
                          world=self.world, run=self.run, extra=extra, **task.state())
        if is_best:
            save_checkpoint(ckpt, self.out / layout.BEST)
        save_checkpoint(ckpt, self.out / layout.LAST)
        self.say(epoch_line(row))

    def stopped(self) -> bool:
        """Whether the run stopped before its last epoch (``--stop-after``); says how to go on if so."""
        if self.finished:
            return False
        self.say(f"stopped after epoch {len(self.history)} of {self.epochs}: continue with --resume")
        return True


def plain(options: dict) -> dict:
    """Options as a checkpoint stores them: paths as text and tuples as lists, so the file holds only plain values."""
    return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v for k, v in options.items()}

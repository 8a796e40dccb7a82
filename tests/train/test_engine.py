"""The engine under both trainers: metrics rows, the best epoch, checkpoints, --stop-after and an exact resume, callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from ichprep.errors import IchprepError
from ichprep.metrics import weighted_log_loss
from ichprep.train.checkpoint import load_checkpoint
from ichprep.train.engine import Callback, Engine, epoch_line

MARKER = "test-checkpoint/1"
SCORES = [0.9, 0.5, 0.7, 0.4]
"""The validation probability of the one positive label per epoch is 1 - score: epochs 2 and 4 improve."""


@dataclass
class Counting:
    """A task whose 'weights' are the epochs it trained, its validation a fixed score per epoch."""

    trained: list[int] = field(default_factory=list)
    begun: list[tuple[int, bool]] = field(default_factory=list)

    def begin_epoch(self, epoch: int, first: bool) -> None:
        self.begun.append((epoch, first))

    def train_epoch(self, epoch: int) -> float:
        self.trained.append(epoch)
        return 1.0 / (epoch + 1)

    def validate(self, epoch: int):
        y = np.array([[1, 0, 0, 0, 0, 0]], dtype=float)
        p = np.full((1, 6), 0.01)
        p[0, 0] = 1 - SCORES[epoch]
        return y, p

    def lr(self) -> float:
        return 0.1

    def columns(self, epoch: int) -> dict:
        return {"size": None}

    def state(self) -> dict:
        return {"model": {"epochs": list(self.trained)}, "optimizer": {}}

    def restore(self, ckpt) -> list[str]:
        self.trained = list(ckpt.model["epochs"])
        return ["restored"]


@dataclass
class Bests(Callback):
    """Records the epochs the engine called best, and keeps a count in the checkpoint."""

    seen: list[int] = field(default_factory=list)

    def after_epoch(self, engine, epoch, row, is_best):
        if is_best:
            self.seen.append(epoch + 1)

    def extra(self) -> dict:
        return {"bests": list(self.seen)}

    def restore(self, extra: dict) -> None:
        self.seen = list(extra["bests"])


def engine(out, said, **changes) -> Engine:
    options = dict(out=out, epochs=4, marker=MARKER, config={"lr": 0.1, "seed": 1}, resume_keys=("lr", "seed"),
                   say=said.append, callbacks=[Bests()])
    return Engine(**{**options, **changes})


def test_every_epoch_writes_its_row_curves_and_checkpoints_and_the_best_is_the_lowest_validation_loss(tmp_path):
    said: list[str] = []
    e, task = engine(tmp_path, said), Counting()
    history = e.fit(task, e.start(task))
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and task.begun[0] == (0, True) and not task.begun[1][1]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns[:4]) == ["epoch", "size", "lr", "train_loss"]
    y = np.array([[1, 0, 0, 0, 0, 0]], dtype=float)
    for row, score in zip(history, SCORES):
        p = np.full((1, 6), 0.01)
        p[0, 0] = 1 - score
        assert row["val_wll"] == pytest.approx(weighted_log_loss(y, p))
    assert e.callbacks[0].seen == [1, 2, 4] and load_checkpoint(tmp_path / "best.pt", MARKER).epoch == 3
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert said[0] == "epoch=1 train_loss=1.0000 val_wll=" + f"{history[0]['val_wll']:.4f}"  # no size=None


def test_a_run_stopped_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    whole, said = Counting(), []
    engine(tmp_path / "whole", said).fit(whole, 0)
    first = engine(tmp_path / "cut", said, stop_after=2)
    first.fit(Counting(), first.start(Counting()))
    assert first.stopped() and said[-1] == "stopped after epoch 2 of 4: continue with --resume"
    again, task = engine(tmp_path / "cut", said, resume=True), Counting()
    start = again.start(task)
    assert start == 2 and task.trained == [0, 1] and said[-1] == "restored" and again.callbacks[0].seen == [1, 2]
    again.fit(task, start)
    assert task.trained == whole.trained and not again.stopped()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "metrics.csv"), pd.read_csv(tmp_path / "whole" / "metrics.csv"))
    assert load_checkpoint(tmp_path / "cut" / "last.pt", MARKER).run == first.run  # one run, whatever its calls


def test_a_resume_with_other_settings_or_nothing_to_resume_is_refused(tmp_path):
    said: list[str] = []
    with pytest.raises(IchprepError, match="no .*last.pt to continue from"):
        engine(tmp_path, said, resume=True).start(Counting())
    engine(tmp_path, said, stop_after=1).fit(Counting(), 0)
    with pytest.raises(IchprepError, match=r"other settings \(lr\)"):
        engine(tmp_path, said, resume=True, config={"lr": 0.2, "seed": 1}).start(Counting())
    with pytest.raises(IchprepError, match="not a checkpoint this ichprep can continue"):
        engine(tmp_path, said, resume=True, marker="another-kind/1").start(Counting())


def test_an_epoch_line_leaves_out_what_the_run_does_not_have():
    assert epoch_line({"epoch": 3, "size": 128, "lr": 0.1, "train_loss": 0.45651, "val_wll": 0.5}) == \
        "epoch=3 size=128 train_loss=0.4565 val_wll=0.5000"
    assert epoch_line({"epoch": 1, "size": None, "train_loss": 0.5}) == "epoch=1 train_loss=0.5000"

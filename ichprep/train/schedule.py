"""Optimizers and learning-rate schedules by name, placed at any point of a run so a resume continues them.

``--optimizer``: ``adamw`` (decoupled weight decay, fastai's and timm's default) or ``adam`` (the
2019 winners': weight decay as an L2 term). ``--schedule``:

- ``one-cycle``: warm-up then cosine annealing over the phase (fastai's ``fit_one_cycle``);
- ``constant``: the rate throughout (the 2nd place's CNN);
- ``step:GAMMA``: multiplied by GAMMA after every epoch (the 2nd place's LSTM, 0.95);
- ``multistep:E1,E2,...:GAMMA``: multiplied by GAMMA after each listed epoch (the 1st place's sequence model);
- ``cosine:PERIOD:FLOOR``: cosine annealing from the rate down to FLOOR x rate over PERIOD
  epochs, restarting after each (PyTorch's ``CosineAnnealingWarmRestarts``).

Every schedule is a function of the point reached (epochs done x steps per epoch), rebuilt on
resume rather than a step counter saved with it, so a run resumed with another number of steps
per epoch (another number of processes) continues the same schedule to the same end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ichprep.errors import IchprepError

if TYPE_CHECKING:
    import torch
    from torch.optim.lr_scheduler import OneCycleLR

OPTIMIZERS: tuple[str, ...] = ("adamw", "adam")
SCHEDULES: tuple[str, ...] = ("one-cycle", "constant", "step", "multistep", "cosine")


def optimizer(name: str, groups: list, lr: float, wd: float) -> torch.optim.Optimizer:
    """The optimizer ``name`` over ``groups`` (parameter groups carry their own weight decay where they set it)."""
    import torch

    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)


@dataclass(frozen=True)
class Schedule:
    """A parsed ``--schedule``: its kind and the numbers of its kind."""

    kind: str = "one-cycle"
    gamma: float = 1.0
    milestones: tuple[int, ...] = ()
    period: int = 1
    floor: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``--schedule`` TEXT (see the module's docstring), refused in one line when malformed."""
        kind, *args = text.split(":")
        try:
            if kind in ("one-cycle", "constant") and not args:
                return cls(kind)
            if kind == "step" and len(args) == 1:
                return cls(kind, gamma=float(args[0]))
            if kind == "multistep" and len(args) == 2:
                return cls(kind, gamma=float(args[1]), milestones=tuple(sorted(int(e) for e in args[0].split(","))))
            if kind == "cosine" and len(args) == 2 and int(args[0]) >= 1:
                return cls(kind, period=int(args[0]), floor=float(args[1]))
        except ValueError:
            pass
        raise IchprepError(f"--schedule {text!r}: choose one-cycle, constant, step:GAMMA, multistep:E1,E2:GAMMA "
                           "or cosine:PERIOD:FLOOR")

    def __str__(self) -> str:
        if self.kind == "step":
            return f"step:{self.gamma:g}"
        if self.kind == "multistep":
            return f"multistep:{','.join(map(str, self.milestones))}:{self.gamma:g}"
        if self.kind == "cosine":
            return f"cosine:{self.period}:{self.floor:g}"
        return self.kind

    def factor(self, epochs: float) -> float:
        """The rate's multiple after ``epochs`` epochs (a fraction inside an epoch) of a schedule that is not one-cycle."""
        if self.kind == "step":
            return self.gamma ** math.floor(epochs)
        if self.kind == "multistep":
            return self.gamma ** sum(epochs >= m for m in self.milestones)
        if self.kind == "cosine":
            into = (epochs % self.period) / self.period
            return self.floor + (1 - self.floor) * (1 + math.cos(math.pi * into)) / 2
        return 1.0


class Stepwise:
    """A schedule of ``Schedule.factor`` stepped once per optimizer step, from step ``done`` of the phase."""

    def __init__(self, optimizer: torch.optim.Optimizer, rates: list[float], schedule: Schedule, steps_per_epoch: int,
                 done: int) -> None:
        self.optimizer, self.rates, self.schedule, self.steps = optimizer, rates, schedule, steps_per_epoch
        self.t = done
        self._apply()

    def _apply(self) -> None:
        f = self.schedule.factor(self.t / self.steps)
        for group, rate in zip(self.optimizer.param_groups, self.rates):
            group["lr"] = rate * f

    def step(self) -> None:
        self.t += 1
        self._apply()


def one_cycle(optimizer: torch.optim.Optimizer, lr: float | list[float], steps_per_epoch: int, epochs: int, done: int,
              pct_start: float = 0.3) -> OneCycleLR:
    """The one-cycle schedule over ``epochs`` of ``steps_per_epoch`` steps, placed after ``done`` epochs.

    OneCycleLR computes a step's rate (and Adam's beta1) from the step's index alone, so a
    scheduler built at index ``done * steps_per_epoch`` gives what an uninterrupted run has there;
    with another steps_per_epoch it sits at the same fraction of the run and still ends annealed.
    A resumed optimizer's groups carry the schedule's lr bounds.
    """
    from torch.optim.lr_scheduler import OneCycleLR

    last = done * steps_per_epoch - 1 if done else -1
    return OneCycleLR(optimizer, max_lr=lr, total_steps=steps_per_epoch * epochs, last_epoch=last, pct_start=pct_start)


def place(schedule: Schedule, optimizer: torch.optim.Optimizer, rates: list[float], steps_per_epoch: int, epochs: int,
          done: int) -> OneCycleLR | Stepwise:
    """``schedule`` over a phase of ``epochs`` epochs at per-group peak ``rates``, placed after ``done`` of them."""
    if schedule.kind == "one-cycle":
        return one_cycle(optimizer, rates, steps_per_epoch, epochs, done)
    return Stepwise(optimizer, rates, schedule, steps_per_epoch, done * steps_per_epoch)

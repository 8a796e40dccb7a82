"""Schedules by name: parsed or refused in one line, each the published rule, and placed mid-run as an uninterrupted run has it."""

import math

import pytest
import torch

from ichprep.errors import IchprepError
from ichprep.train.schedule import Schedule, optimizer, place


@pytest.mark.parametrize("text, kind", [("one-cycle", "one-cycle"), ("constant", "constant"), ("step:0.95", "step"),
                                        ("multistep:30,20,40:0.1", "multistep"), ("cosine:5:0.02", "cosine")])
def test_each_schedule_reads_back_as_written(text, kind):
    schedule = Schedule.parse(text)
    assert schedule.kind == kind
    assert Schedule.parse(str(schedule)) == schedule
    assert str(Schedule.parse("multistep:30,20,40:0.1")) == "multistep:20,30,40:0.1"


@pytest.mark.parametrize("text", ["linear", "step", "step:fast", "multistep:20", "cosine:0:0.1", "constant:1", ""])
def test_a_malformed_schedule_is_refused_naming_the_forms(text):
    with pytest.raises(IchprepError, match="choose one-cycle, constant, step:GAMMA"):
        Schedule.parse(text)


def test_the_rules_are_torchs_steplr_multisteplr_and_a_cosine_that_restarts():
    assert Schedule.parse("step:0.95").factor(3.99) == pytest.approx(0.95**3)
    multi = Schedule.parse("multistep:20,30,40:0.1")
    assert [multi.factor(e) for e in (19.9, 20, 29.5, 30, 45)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.001])
    cosine = Schedule.parse("cosine:5:0.02")
    assert cosine.factor(0) == 1 and cosine.factor(2.5) == pytest.approx(0.02 + 0.98 * (1 + math.cos(math.pi / 2)) / 2)
    assert cosine.factor(5) == 1 and cosine.factor(4.999) == pytest.approx(0.02, abs=1e-5)
    assert Schedule.parse("constant").factor(17.3) == 1


@pytest.mark.parametrize("text", ["one-cycle", "step:0.9", "multistep:2:0.1", "cosine:2:0.1"])
def test_a_schedule_placed_after_some_epochs_continues_the_uninterrupted_one(text):
    schedule, steps, epochs = Schedule.parse(text), 4, 5

    def rates(done: int) -> list[float]:
        params = [torch.zeros(1, requires_grad=True)]
        opt = optimizer("adam", params, 0.1, 0.0)
        scheduler = place(schedule, opt, [0.1], steps, epochs, 0)  # as a resumed optimizer's groups, with their bounds
        scheduler = place(schedule, opt, [0.1], steps, epochs, done)
        seen = []
        for _ in range(steps * (epochs - done)):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
        return seen

    assert rates(2) == pytest.approx(rates(0)[2 * steps :], rel=1e-12)


def test_adam_keeps_weight_decay_in_the_gradient_and_adamw_apart():
    assert type(optimizer("adam", [torch.zeros(1, requires_grad=True)], 0.1, 0.01)).__name__ == "Adam"
    assert type(optimizer("adamw", [torch.zeros(1, requires_grad=True)], 0.1, 0.01)).__name__ == "AdamW"

"""One optimisation step: N accumulated batches step as one batch of N times their size."""

import torch

from ichprep.train.step import make_step


def test_two_accumulated_half_batches_step_as_the_whole_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), (torch.rand(8, 6) > 0.5).float()

    def trained(accumulate: int) -> tuple[torch.Tensor, list[bool]]:
        torch.manual_seed(1)
        model = torch.nn.Linear(5, 6)
        step = make_step(model, torch.optim.AdamW(model.parameters(), lr=0.1), torch.device("cpu"), clip=10.0,
                         accumulate=accumulate)
        part = len(x) // accumulate
        stepped = [step(x[k : k + part], y[k : k + part])[1] for k in range(0, len(x), part)]
        return model.weight.detach().clone(), stepped

    whole, once = trained(1)
    halves, twice = trained(2)
    assert once == [True] and twice == [False, True]
    assert torch.allclose(whole, halves, atol=1e-6)
    assert not torch.allclose(whole, torch.nn.Linear(5, 6).weight)


def test_the_last_batch_of_an_epoch_steps_whatever_is_pending():
    model = torch.nn.Linear(5, 6)
    step = make_step(model, torch.optim.AdamW(model.parameters(), lr=0.1), torch.device("cpu"), clip=1.0, accumulate=4)
    x, y = torch.randn(2, 5), torch.zeros(2, 6)
    assert [step(x, y)[1], step(x, y, last=True)[1], step(x, y)[1]] == [False, True, False]

"""The training sampler: each epoch's rows (a rebalanced draw) shuffled by (seed, epoch), shared out between processes."""

import numpy as np

from ichprep.train.loaders import EpochSampler


def test_an_epoch_trains_on_its_drawn_rows_alone_in_an_order_of_its_own():
    drawn = {0: np.array([1, 4, 5, 9]), 1: np.array([0, 2, 4, 7])}
    sampler = EpochSampler(10, seed=3, rows=drawn.get)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        assert sorted(orders[-1]) == drawn[epoch].tolist() and len(sampler) == 4
    assert orders[0] == orders[2]  # a resumed epoch draws what it drew before


def test_processes_share_an_epoch_without_overlap_padding_as_distributed_sampler_does():
    rows = np.array([0, 2, 3, 5, 8])
    shares = [EpochSampler(10, seed=3, rank=r, world=2, rows=lambda _e: rows) for r in (0, 1)]
    first, second = list(shares[0]), list(shares[1])
    assert len(first) == len(second) == len(shares[0]) == 3
    assert sorted(set(first) | set(second)) == rows.tolist() and len(first + second) == 6  # one row padded in twice


def test_without_a_draw_every_row_trains_each_epoch():
    sampler = EpochSampler(6, seed=1)
    assert sorted(sampler) == list(range(6)) and len(sampler) == 6

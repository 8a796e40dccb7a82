"""How many loader processes a run gets, and how far ahead they read."""

import pytest
import torch

from ichprep.data.workers import CPU_WORKERS, CUDA_PREFETCH, loader_workers

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.mark.parametrize("requested, device, processes, cores, expected", [
    (None, CPU, 1, 16, (CPU_WORKERS, None)),         # the model step is the limit on a CPU
    (None, CUDA, 1, 2, (CPU_WORKERS, CUDA_PREFETCH)),  # Colab: two cores
    (None, CUDA, 1, 16, (15, CUDA_PREFETCH)),        # one core stays with the process driving the GPU
    (None, CUDA, 4, 16, (3, CUDA_PREFETCH)),         # torchrun with 4 processes shares the cores
    (6, CUDA, 1, 16, (6, CUDA_PREFETCH)),            # --workers wins
    (0, CUDA, 1, 16, (0, None)),                     # in the main process: nothing to prefetch
    (3, CPU, 1, 16, (3, None)),
])
def test_workers_follow_the_cores_each_process_may_use(requested, device, processes, cores, expected):
    assert loader_workers(requested, device, processes, cores) == expected

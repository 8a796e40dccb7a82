"""Where a network runs and in what precision: the device ``--device`` names, and the autocast dtype of a GPU.

Shared by training and inference, so a model predicts in the precision it was validated in.
"""

from __future__ import annotations

import torch

from ichprep.errors import IchprepError

TENSOR_CORES: tuple[int, int] = (7, 0)
"""The first compute capability with fp16 tensor cores (Volta: V100; Turing, 7.5: T4)."""

BF16_CORES: tuple[int, int] = (8, 0)
"""The first compute capability with bf16 tensor cores (Ampere: A100; then Hopper, H100)."""


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU; anything else as given, a CUDA device checked.

    A CUDA device is made the current one: capability checks (``torch.cuda.is_bf16_supported``),
    pinned-memory buffers and kernels without an explicit device all go to the current device,
    which would otherwise stay GPU 0 under ``--device cuda:1``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise IchprepError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise IchprepError(f"--device {name}: no CUDA device is available here")
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise IchprepError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
    torch.cuda.set_device(device)
    return device


def precision(capability: tuple[int, int], bf16_native: bool) -> torch.dtype | None:
    """The autocast dtype of a CUDA device of compute ``capability``; None means fp32.

    bf16 where the tensor cores do it natively: its range is fp32's, so no loss scaling is
    needed. ``torch.cuda.is_bf16_supported()`` counts emulation by default and says yes on a T4 or
    V100 (the Colab and Kaggle GPUs), where bf16 runs on the plain CUDA cores several times slower
    than fp16 on the tensor cores, so ``bf16_native`` must come from ``including_emulation=False``;
    those GPUs get fp16 with a GradScaler. Before Volta there are no tensor cores, and fp16
    arithmetic is fast on some of those GPUs (P100) and crippled on others (GTX 10xx): fp32.
    """
    if bf16_native and capability >= BF16_CORES:
        return torch.bfloat16
    if capability >= TENSOR_CORES:
        return torch.float16
    return None


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """``precision`` of ``device`` (None, fp32, on a CPU: autocast there would be slower, not faster)."""
    if device.type != "cuda":
        return None
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return precision(torch.cuda.get_device_capability(device), native)


def precision_name(dtype: torch.dtype | None) -> str:
    """How a run's first line names its precision."""
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast with loss scaling"}.get(dtype, "fp32")

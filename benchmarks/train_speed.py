"""Images per second of the training input pipeline, the model step, and both together.

Where a slow epoch comes from decides what to fix: when "loader + step" is close to "loader
alone" and well below "model step alone", the loader is the limit and wants more --workers, HDF5
shards or smaller stored images; when it is close to "model step alone", the step is, and wants a
GPU, a smaller --sizes stage or a lighter --arch. Each measurement takes the trainer's own path
(``data.batches.model_input``, ``step.Step``: precision, loss scaling, channels_last). Without --data
it writes --n noisy PNG images of --size px (about as costly to decode as converted slices) into a
temporary folder. --workers defaults as `ichprep train` chooses them on the device.

    python benchmarks/train_speed.py                      # CPU, small defaults, < 1 minute
    python benchmarks/train_speed.py --data OUT --arch resnet50 --batch-size 64 --device cuda
    python benchmarks/train_speed.py --curated            # every curated arch at 256 px: the README's table

``--curated`` measures, for each arch of ``models.backbones.CURATED``, its parameters with the
six-label head, and the forward pass (predict) and the training step (forward, backward, AdamW)
in images per second on one resident batch at --size (default 256 there): the archs take turns,
--batches turns, medians.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from ichprep import LABELS
from ichprep.data.batches import model_input
from ichprep.data.dataset import make_dataset
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.models.backbones import CURATED, create
from ichprep.models.device import amp_dtype, pick_device, precision_name
from ichprep.store import open_store
from ichprep.train.augment import augment
from ichprep.train.step import Step, make_step


def write_images(root: Path, n: int, size: int) -> Path:
    """`n` smooth-noise RGB PNGs: random enough that PNG decoding costs what real slices cost."""
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"ID_{i:09x}.png"), cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))
    return root


def loader_rate(loader: DataLoader, batches: int) -> float:
    """Images per second of iterating the loader alone (first batch, with worker start-up, excluded)."""
    it = iter(loader)
    next(it)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        x, _ = next(it)
        count += len(x)
    return count / (time.perf_counter() - start)


def trainer_step(model: torch.nn.Module, device: torch.device) -> Step:
    """The trainer's step (autocast in the device's precision, loss scaling in fp16, clipping, AdamW)."""
    return make_step(model, torch.optim.AdamW(model.parameters(), lr=1e-4), device, clip=1.0)


def batch_input(x: torch.Tensor, device: torch.device, g: torch.Generator) -> torch.Tensor:
    """A loader's uint8 batch as the trainer feeds it: on the device, normalised, augmented, channels_last on CUDA."""
    channels = x.shape[1]
    return model_input(x, device, None, (0.6,) * channels, (0.25,) * channels, lambda b: augment(b, g))


def step_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
    """Images per second of augment + forward + backward + AdamW on one resident batch."""
    step = trainer_step(model, device)
    g = torch.Generator(device=device).manual_seed(0)
    x, y = x.to(device), y.to(device)
    step(batch_input(x, device, g), y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch_input(x, device, g), y)
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def both_rate(model: torch.nn.Module, loader: DataLoader, batches: int, device: torch.device) -> float:
    """Images per second of the real loop: load, copy to the device, normalise, augment, step."""
    step = trainer_step(model, device)
    g = torch.Generator(device=device).manual_seed(0)
    it = iter(loader)
    next(it)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(it)
        step(batch_input(x, device, g), y.to(device, non_blocking=True))
        count += len(x)
    _sync(device)
    return count / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(data: Path, arch: str, batch_size: int, batches: int, workers: int | None, device: torch.device) -> dict:
    """Loader alone, model step alone, and both together over DATA, as images per second, with the set-up used."""
    source = open_store(data)
    ds = make_dataset(source, source.ids, None)
    # Random labels: the timing does not depend on them, and an unlabelled set has NaN labels.
    ds.labels = np.random.default_rng(0).integers(0, 2, size=(len(ds), len(LABELS))).astype(np.float32)
    workers, prefetch = loader_workers(workers, device, 1, usable_cores())
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, prefetch_factor=prefetch,
                        drop_last=True, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    batches = min(batches, len(loader) - 1)
    model = create(arch, ds.channels).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x, y = next(iter(loader))
    return {
        "setup": f"{arch}, {x.shape[-1]} px, batch {batch_size}, {workers} workers, {device} "
                 f"({precision_name(amp_dtype(device))}), {torch.get_num_threads()} torch threads",
        "loader alone": loader_rate(loader, batches),
        "model step alone": step_rate(model, x, y, batches, device),
        "loader + step": both_rate(model, loader, batches, device),
    }


@torch.inference_mode()
def forward_rate(model: torch.nn.Module, x: torch.Tensor, steps: int, device: torch.device) -> float:
    """Images per second of the forward pass alone (what predict pays per image and view), after one warm-up."""
    model.eval()
    x = x.to(device).float()
    model(x)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        model(x)
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def curated(size: int, batch_size: int, repeats: int, device: torch.device) -> list[dict]:
    """Parameters, and the median forward and training-step images/s of every curated arch on random batches of ``size`` px.

    The archs take turns within each repeat, so a machine whose load drifts slows them alike and
    their ratios hold.
    """
    x = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    y = torch.randint(0, 2, (batch_size, len(LABELS))).float()
    torch.manual_seed(0)
    models = {b.arch: create(b.arch, 3).to(device) for b in CURATED}
    rates: dict[str, dict[str, list[float]]] = {arch: {"forward": [], "train": []} for arch in models}
    for _ in range(repeats):
        for arch, model in models.items():
            rates[arch]["forward"].append(forward_rate(model, x, 1, device))
            rates[arch]["train"].append(step_rate(model.train(), x, y, 1, device))
    rows = []
    for arch, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        forward, train = float(np.median(rates[arch]["forward"])), float(np.median(rates[arch]["train"]))
        rows.append({"arch": arch, "params_m": params, "forward": forward, "train": train})
        print(f"{arch:<40}{params:>8.1f}{forward:>10.2f}{train:>10.2f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="convert's output to read (default: generated PNGs)")
    parser.add_argument("--n", type=int, default=256, help="images to generate without --data")
    parser.add_argument("--size", type=int, default=64, help="side of generated images")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--workers", type=int, default=None, help="loader processes (default: as ichprep train picks them)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--curated", action="store_true",
                        help="time every curated arch, taking turns (--size defaults to 256, batch to 4, --batches counts the turns)")
    args = parser.parse_args()

    device = pick_device(args.device)
    if args.curated:
        size = args.size if args.size != 64 else 256
        batch = args.batch_size if args.batch_size != 32 else 4
        print(f"{size} px, batch {batch}, median of {args.batches} turns, {device}, {torch.get_num_threads()} torch threads")
        print(f"{'arch':<40}{'params M':>8}{'fwd im/s':>10}{'train im/s':>10}")
        curated(size, batch, args.batches, device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_images(Path(tmp), args.n, args.size)
        rates = measure(data, args.arch, args.batch_size, args.batches, args.workers, device)
    print(rates.pop("setup"))
    print(f"{'stage':<18}{'images/s':>10}")
    for name, rate in rates.items():
        print(f"{name:<18}{rate:>10.1f}")


if __name__ == "__main__":
    main()

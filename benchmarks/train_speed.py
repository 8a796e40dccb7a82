"""Images per second of the training input pipeline, the model step, and both together.

Where a slow epoch comes from decides what to fix: a loader that cannot feed the model wants
more --workers, HDF5 shards or smaller stored images; a slow model step wants a GPU, a smaller
--sizes stage or a lighter --arch. Without --data it writes --n noisy PNG images of --size px
(about as costly to decode as converted slices) into a temporary folder.

    python benchmarks/train_speed.py                      # CPU, small defaults, < 1 minute
    python benchmarks/train_speed.py --data OUT --arch resnet50 --size 256 --batch-size 64 --device cuda
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
from ichprep.store import open_store
from ichprep.train.augment import augment
from ichprep.train.dataset import make_dataset, normalise
from ichprep.train.distributed import pick_device
from ichprep.train.inference import amp_dtype
from ichprep.train.loss import weighted_bce
from ichprep.train.metrics import LABEL_WEIGHTS
from ichprep.train.models import build


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


def trainer_step(model: torch.nn.Module, device: torch.device):
    """One training step as the trainer takes it: augment, forward (autocast), weighted BCE, backward, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    weights = torch.tensor(LABEL_WEIGHTS, device=device)
    dtype = amp_dtype(device)
    g = torch.Generator(device=device).manual_seed(0)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(augment(x, g))
        loss = weighted_bce(logits, y, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
    """Images per second of forward + backward + AdamW on one resident batch."""
    step = trainer_step(model, device)
    step(x, y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def both_rate(model: torch.nn.Module, loader: DataLoader, batches: int, device: torch.device) -> float:
    """Images per second of the real loop: load, copy to the device, normalise, augment, step."""
    step = trainer_step(model, device)
    it = iter(loader)
    next(it)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(it)
        step(normalise(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
        count += len(x)
    _sync(device)
    return count / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="convert's output to read (default: generated PNGs)")
    parser.add_argument("--n", type=int, default=256, help="images to generate without --data")
    parser.add_argument("--size", type=int, default=64, help="side of generated images")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_images(Path(tmp), args.n, args.size)
        source = open_store(data)
        ds = make_dataset(source, source.ids, None)
        # Random labels: the timing does not depend on them, and an unlabelled set has NaN labels.
        ds.labels = np.random.default_rng(0).integers(0, 2, size=(len(ds), len(LABELS))).astype(np.float32)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                            pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
        batches = min(args.batches, len(loader) - 1)
        model = build(args.arch, in_channels=ds.channels).to(device).train()
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        x, y = next(iter(loader))
        x, y = normalise(x.to(device)), y.to(device)
        rows = [
            ("loader alone", loader_rate(loader, batches)),
            ("model step alone", step_rate(model, x, y, batches, device)),
            ("loader + step", both_rate(model, loader, batches, device)),
        ]
    side = x.shape[-1]
    print(f"{args.arch}, {side} px, batch {args.batch_size}, {args.workers} workers, {device}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'stage':<18}{'images/s':>10}")
    for name, rate in rows:
        print(f"{name:<18}{rate:>10.1f}")


if __name__ == "__main__":
    main()

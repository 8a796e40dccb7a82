"""The trainer on a GPU, end to end in one run: the check to make when a GPU is lent.

It needs nothing but this repository. On phantoms it makes itself (``ichprep.synth.generate``,
then ``convert`` to HDF5 shards with their labels) it

1. names the device, its compute capability and the precision the trainer picks for it;
2. for each timm arch of --archs (random weights: nothing is downloaded), measures images/s of
   the loader alone, the model step alone and both (``train_speed.measure``), then trains it for
   about --steps steps as ``ichprep train`` does (autocast, channels_last, the device's loader
   workers), stopping half-way and resuming with ``--resume``, and checks that the resumed run
   ends on the learning rate an uninterrupted one-cycle run ends on;
3. trains a --folds 2 run of the first arch (one epoch a fold), and predicts every image with
   the fold ensemble and hflip + transpose TTA, checking the probabilities;
4. reports peak GPU memory.

It exits non-zero when a check fails.

    python benchmarks/gpu_check.py                      # on a GPU: 256 px, about 300 steps an arch, under 6 minutes
    python benchmarks/gpu_check.py --device cpu --n 96 --dicom-size 128 --size 64 --batch-size 8 --steps 6 --archs resnet18
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from train_speed import measure

from ichprep.convert import Options, Settings, convert
from ichprep.data.workers import usable_cores
from ichprep.models.device import amp_dtype, pick_device, precision_name
from ichprep.predict import predict
from ichprep.store import open_converted
from ichprep.synth import IMAGES_DIR, LABELS_CSV, generate
from ichprep.train import TrainConfig, train, train_folds
from ichprep.train.trainset import prepare

VAL_FRAC = 0.1


def phantoms(root: Path, n: int, dicom_size: int, size: int) -> Path:
    """`n` phantom slices as HDF5 shards of `size` px with their labels; returns the shard folder."""
    start = time.perf_counter()
    generate(root / "syn", n, seed=0, size=dicom_size)
    made = time.perf_counter()
    result = convert(root / "syn" / IMAGES_DIR, root / "shards",
                     Settings(format="hdf5", size=size), Options(labels=root / "syn" / LABELS_CSV, jobs=usable_cores(), quiet=True))
    if result.converted != n:
        raise SystemExit(f"convert: {result.converted} of {n} phantoms converted ({result.failures[:3]})")
    print(f"data: {n} phantoms of {dicom_size} px in {made - start:.1f} s, HDF5 shards of {size} px "
          f"in {time.perf_counter() - made:.1f} s")
    return root / "shards"


def describe(device: torch.device) -> None:
    """The device and the precision the trainer chooses for it."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"device: {props.name}, compute capability {props.major}.{props.minor}, "
              f"{props.total_memory / 2**30:.0f} GiB, native bf16: {torch.cuda.is_bf16_supported(including_emulation=False)}")
    else:
        print(f"device: {device}")
    print(f"precision: {precision_name(amp_dtype(device))}; torch {torch.__version__}; {usable_cores()} usable cores")


def expected_final_lr(lr: float, steps: int) -> float:
    """The rate after `steps` steps of an uninterrupted OneCycleLR run."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


def train_and_resume(cfg: TrainConfig, steps_per_epoch: int) -> list[str]:
    """Half the epochs, then --resume to the end; returns the failed checks."""
    lines: list[str] = []
    start = time.perf_counter()
    train(replace(cfg, stop_after=max(1, cfg.epochs // 2)), say=lines.append)
    history = train(replace(cfg, resume=True), say=lines.append)
    seconds = time.perf_counter() - start
    print("\n".join(f"  {line}" for line in lines if not line.startswith("epoch=")))
    images = cfg.epochs * steps_per_epoch * cfg.batch_size
    print(f"train: {cfg.epochs} epochs x {steps_per_epoch} steps of {cfg.batch_size} in {seconds:.1f} s "
          f"({images / seconds:.0f} img/s including start-up, validation and checkpoints, stopped and resumed once)")
    for row in history:
        print(f"  epoch {row['epoch']}: lr {row['lr']:.2e} train_loss {row['train_loss']:.4f} val_wll {row.get('val_wll', math.nan):.4f}")
    last = torch.load(cfg.out / "last.pt", map_location="cpu", weights_only=True)
    final, expected = last["optimizer"]["param_groups"][-1]["lr"], expected_final_lr(cfg.lr, cfg.epochs * steps_per_epoch)
    failed = []
    if [row["epoch"] for row in history] != list(range(1, cfg.epochs + 1)):
        failed.append(f"resume: epochs {[row['epoch'] for row in history]}")
    if not math.isclose(final, expected, rel_tol=1e-9):
        failed.append(f"resume: final lr {final:.3e}, an uninterrupted run ends at {expected:.3e}")
    if not all(np.isfinite(row["train_loss"]) for row in history):
        failed.append("train: a loss is not finite")
    return failed


def check_predict(model: Path, data: Path, n: int, device: str) -> list[str]:
    """Predict every image with the fold ensemble and two TTA views; returns the failed checks."""
    start = time.perf_counter()
    pred = predict(model, data, device=device, tta=("hflip", "transpose"), quiet=True)
    seconds = time.perf_counter() - start
    print(f"predict: {len(pred.ids)} images, 2-fold ensemble x 3 views, in {seconds:.1f} s "
          f"({len(pred.ids) / seconds:.0f} img/s including start-up)")
    ok = pred.probs.shape == (n, 6) and np.isfinite(pred.probs).all() and ((pred.probs >= 0) & (pred.probs <= 1)).all()
    return [] if ok else [f"predict: probabilities of shape {pred.probs.shape} outside [0, 1] or not finite"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=2048, help="phantom slices to generate")
    parser.add_argument("--dicom-size", type=int, default=512, help="side of the phantom DICOMs")
    parser.add_argument("--size", type=int, default=256, help="side of the converted images the network sees")
    parser.add_argument("--archs", default="efficientnet_b0,seresnext50_32x4d", help="comma-separated timm archs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="training steps, rounded up to whole epochs (at least 2)")
    parser.add_argument("--workers", type=int, default=None, help="loader processes (default: as ichprep train picks them)")
    parser.add_argument("--speed-batches", type=int, default=30, help="timed batches per speed measurement")
    parser.add_argument("--compile", action="store_true", help="train with torch.compile")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()

    device = pick_device(args.device)
    describe(device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = args.keep or Path(tmp)
        data = phantoms(root, args.n, args.dicom_size, args.size)
        archs = [a for a in args.archs.split(",") if a]
        steps_per_epoch = len(prepare(open_converted(data), None, VAL_FRAC, 42).train_ids) // args.batch_size
        epochs = max(2, math.ceil(args.steps / steps_per_epoch))
        failed: list[str] = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for arch in archs:
            rates = measure(data, arch, args.batch_size, args.speed_batches, args.workers, device)
            print(f"speed: {rates.pop('setup')}")
            for name, rate in rates.items():
                print(f"  {name:<18}{rate:>9.0f} img/s")
            cfg = TrainConfig(data=data, out=root / arch, arch=arch, pretrained=False, epochs=epochs, batch_size=args.batch_size,
                              val_frac=VAL_FRAC, workers=args.workers, device=str(device), quiet=True, compile=args.compile)
            failed += train_and_resume(cfg, steps_per_epoch)
        folds = TrainConfig(data=data, out=root / "folds", arch=archs[0], pretrained=False, epochs=1, folds=2,
                            batch_size=args.batch_size, workers=args.workers, device=str(device), quiet=True,
                            flips=("hflip", "vflip", "transpose"))  # the views check_predict averages over
        start = time.perf_counter()
        scores = train_folds(folds, say=lambda _m: None)
        print(f"folds: 2 folds of {archs[0]} in {time.perf_counter() - start:.1f} s, "
              f"out-of-fold weighted log loss {scores['oof_weighted_log_loss']:.4f}")
        failed += check_predict(folds.out / "model.pt", data, args.n, str(device))
    if device.type == "cuda":
        print(f"GPU memory: peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated, "
              f"{torch.cuda.max_memory_reserved(device) / 2**30:.2f} GiB reserved (training and predict)")
    print("\n".join(f"FAILED {f}" for f in failed) or "all checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

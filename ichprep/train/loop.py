"""`ichprep train`: a plain-PyTorch training loop over convert's output.

AdamW with a one-cycle schedule, the competition's weighted BCE (any = 2, subtypes = 1), batch
augmentation on the device, bf16 autocast and channels_last on CUDA, optional progressive
resizing, checkpoints every epoch that resume exactly, and DistributedDataParallel when launched
by torchrun. Exact resume works because every epoch reseeds all generators from (seed, epoch):
an epoch's shuffle, augmentation and dropout never depend on what ran before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ichprep.errors import IchprepError
from ichprep.train.augment import augment
from ichprep.train.checkpoint import (
    load,
    rng_state,
    save_atomic,
    seed_everything,
    set_rng_state,
)
from ichprep.train.config import RESUME_KEYS, TrainConfig
from ichprep.train.dataset import ICHDataset, normalise
from ichprep.train.distributed import (
    Dist,
    barrier,
    gather_rows,
    setup,
    sync_buffers,
    teardown,
)
from ichprep.train.inference import (
    amp_dtype,
    image_size,
    predict_loader,
    resize_batch,
    unwrap,
)
from ichprep.train.loaders import datasets, make_loaders
from ichprep.train.loss import weighted_bce
from ichprep.train.metrics import LABEL_WEIGHTS, summary
from ichprep.train.network import build_model, model_record
from ichprep.train.trainset import prepare


def metrics_row(epoch: int, size: int | None, lr: float, train_loss: float, y: np.ndarray | None, p: np.ndarray | None) -> dict:
    """One line of metrics.csv: epoch, size, lr, train loss and the validation diagnostics."""
    row: dict = {"epoch": epoch + 1, "size": size, "lr": lr, "train_loss": train_loss}
    if y is None or p is None or not len(y):
        return row
    s = summary(y, p)
    row["val_wll"] = s["weighted_log_loss"]
    for key, prefix in (("log_loss", "val_logloss"), ("auc", "val_auc"), ("accuracy", "val_acc")):
        row.update({f"{prefix}_{name}": value for name, value in s[key].items()})
    return row


@dataclass
class Run:
    """The live objects of a run, so the epoch function stays readable."""

    cfg: TrainConfig
    dist: Dist
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loader: DataLoader
    val_loader: DataLoader | None
    val_positions: np.ndarray
    weights: torch.Tensor
    history: list[dict] = field(default_factory=list)
    best: float = math.inf


def _resume(run: Run, path: Path) -> int:
    """Load last.pt into the run; returns the first epoch still to do."""
    ckpt = load(path)
    changed = [k for k in RESUME_KEYS if ckpt["config"].get(k) != asdict(run.cfg)[k]]
    if changed:
        raise IchprepError(f"--resume: {path} was made with other settings ({', '.join(changed)}); use the same options")
    unwrap(run.model).load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.history, run.best = ckpt["history"], ckpt["best"]
    set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]) + 1


def _train_epoch(run: Run, epoch: int, size: int | None) -> float:
    from tqdm import tqdm

    cfg, d = run.cfg, run.dist
    seed_everything(cfg.seed * 1000 + epoch)
    g = torch.Generator(device=d.device).manual_seed(cfg.seed * 1000 + epoch)
    run.loader.sampler.set_epoch(epoch)
    run.model.train()
    dtype = amp_dtype(d.device)
    total, count, smooth = 0.0, 0, None
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}", disable=cfg.quiet or not d.main, leave=False)
    for x, y in bar:
        x = resize_batch(normalise(x.to(d.device, non_blocking=True), cfg.mean, cfg.std), size)
        y = y.to(d.device, non_blocking=True)
        if cfg.augment:
            x = augment(x, g)
        if d.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(d.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = run.model(x)
        loss = weighted_bce(logits, y, run.weights)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        value = loss.item()
        total, count = total + value, count + 1
        smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
        bar.set_postfix(loss=f"{smooth:.4f}")
    mean = torch.tensor([total, count], dtype=torch.float64, device=d.device)
    if d.enabled:
        torch.distributed.all_reduce(mean)
    return float(mean[0] / mean[1])


def _validate(run: Run, val_ds: ICHDataset | None, size: int | None) -> np.ndarray | None:
    """Validation probabilities of every image on rank 0 (each rank predicts its own unpadded slice)."""
    if run.val_loader is None or val_ds is None:
        return None
    sync_buffers(run.dist, unwrap(run.model))
    p = predict_loader(unwrap(run.model), run.val_loader, run.dist.device, size, quiet=True, mean=run.cfg.mean, std=run.cfg.std)
    return gather_rows(run.dist, run.val_positions, p, len(val_ds))


def _write_epoch(run: Run, epoch: int, record: Callable[[], dict], is_best: bool) -> None:
    out = run.cfg.out
    pd.DataFrame(run.history).to_csv(out / "metrics.csv", index=False)
    from ichprep.plots.training import plot_curves

    plot_curves(pd.DataFrame(run.history), out / "curves.png")
    model = unwrap(run.model)
    ckpt = {
        "model": model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": epoch,
        "best": run.best,
        "history": run.history,
        "config": asdict(run.cfg),
        "rng": rng_state(),
    }
    if is_best:
        save_atomic(ckpt, out / "best.pt")
        save_atomic(record(), out / "model.pt")
    save_atomic(ckpt, out / "last.pt")


def train(cfg: TrainConfig, say: Callable[[str], None] = print) -> list[dict]:
    """Train per `cfg`, writing RUN/last.pt, best.pt, model.pt, metrics.csv, curves.png; returns the metric rows."""
    d = setup(cfg.device)
    try:
        return _train(cfg, d, say if d.main else (lambda _msg: None))
    finally:
        teardown(d)


def _train(cfg: TrainConfig, d: Dist, say: Callable[[str], None]) -> list[dict]:
    if cfg.resume and not (cfg.out / "last.pt").exists():
        raise IchprepError(f"--resume: no {cfg.out / 'last.pt'} to continue from")
    torch.backends.cudnn.benchmark = d.device.type == "cuda"
    ts = prepare(cfg.data, cfg.labels, cfg.val_frac, cfg.seed, cfg.max_images)
    train_ds, val_ds = datasets(cfg, ts)
    stages = cfg.stages()
    in_channels = train_ds.channels
    model = build_model(cfg, in_channels, d.device)
    if d.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    for note in ts.notes:
        say(note)
    if d.enabled:
        ids = [d.device.index] if d.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    loader, val_loader, positions = make_loaders(cfg, d, train_ds, val_ds)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=len(loader) * len(stages))
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype(d.device) == torch.float16)
    weights = torch.tensor(LABEL_WEIGHTS, device=d.device)
    run = Run(cfg, d, model, optimizer, scheduler, scaler, loader, val_loader, positions, weights)
    start = _resume(run, cfg.out / "last.pt") if cfg.resume else 0
    final_size = stages[-1] if stages and stages[-1] else image_size(train_ds)
    say(f"{cfg.arch}, {in_channels} channels, {len(stages)} epochs of {len(loader)} steps on {d.device}"
        + (f" x {d.world} processes" if d.enabled else "") + (f", resuming at epoch {start + 1}" if start else ""))
    y_val = val_ds.labels if val_ds is not None else None
    for epoch in range(start, len(stages)):
        if cfg.stop_after is not None and epoch - start >= cfg.stop_after:
            break
        size = stages[epoch]
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(run, epoch, size)
        p_val = _validate(run, val_ds, size)
        if d.main:
            row = metrics_row(epoch, size, lr, train_loss, y_val, p_val)
            run.history.append(row)
            score = row.get("val_wll", train_loss)
            is_best = score < run.best
            run.best = min(run.best, score)
            _write_epoch(run, epoch, lambda: model_record(cfg, unwrap(model).state_dict(), ts, in_channels, final_size), is_best)
            say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                         if k in ("epoch", "size", "train_loss", "val_wll")))
        barrier(d)
    return run.history

"""`ichprep train`: a plain-PyTorch training loop over convert's output.

AdamW with a one-cycle schedule, the competition's weighted BCE (any = 2, subtypes = 1), batch
augmentation on the device, autocast in the GPU's precision (``models.device.precision``) and
channels_last on CUDA, optional progressive resizing and torch.compile, checkpoints every epoch
that resume exactly, and DistributedDataParallel when launched by torchrun.

Exact resume works because every epoch reseeds all generators from (seed, epoch, rank): an
epoch's shuffle, augmentation and dropout never depend on what ran before it. The learning rate
is a function of the point reached in the run (epochs done x steps per epoch), rebuilt on resume
rather than a step counter saved with it, so a run resumed with another number of processes,
hence another number of steps per epoch, continues the same schedule to the same end.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR
from torch.utils.data import DataLoader

from ichprep import layout
from ichprep.data.batches import model_input
from ichprep.data.dataset import ICHDataset, image_size
from ichprep.errors import IchprepError
from ichprep.metrics import summary
from ichprep.models.backbones import layer_groups
from ichprep.models.device import precision_name
from ichprep.models.pretrained import RANDOM
from ichprep.predict.inference import predict_loader
from ichprep.store import open_converted
from ichprep.train.augment import augment
from ichprep.train.checkpoint import (
    CHECKPOINT_FORMAT,
    epoch_seed,
    load_checkpoint,
    restore_scaler,
    save_atomic,
    seed_everything,
)
from ichprep.train.config import RESUME_KEYS, TrainConfig
from ichprep.train.distributed import (
    Dist,
    barrier,
    gather_rows,
    setup,
    sync_buffers,
    teardown,
)
from ichprep.train.loaders import datasets, make_loaders
from ichprep.train.network import build_model, model_record, normalisation, start_of
from ichprep.train.step import Step, make_step
from ichprep.train.trainset import prepare

REPORT_EVERY: int = 50
"""Steps between two readings of the loss for the progress bar: each reading makes the host wait
for the GPU, which every step would otherwise leave queued with work."""


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
    step: Step
    scheduler: OneCycleLR
    loader: DataLoader
    val_loader: DataLoader | None
    val_positions: np.ndarray
    history: list[dict] = field(default_factory=list)
    best: float = math.inf


def one_cycle(optimizer: torch.optim.Optimizer, lr: float | list[float], steps_per_epoch: int, epochs: int, done: int,
              pct_start: float = 0.3) -> OneCycleLR:
    """The one-cycle schedule over ``epochs`` of ``steps_per_epoch`` steps, placed after ``done`` epochs.

    OneCycleLR computes a step's rate (and AdamW's beta1) from the step's index alone, so a
    scheduler built at index ``done * steps_per_epoch`` gives what an uninterrupted run has there;
    with another steps_per_epoch (another number of processes) it sits at the same fraction of the
    run and still ends annealed. A resumed optimizer's groups carry the schedule's lr bounds.
    """
    last = done * steps_per_epoch - 1 if done else -1
    return OneCycleLR(optimizer, max_lr=lr, total_steps=steps_per_epoch * epochs, last_epoch=last, pct_start=pct_start)


FROZEN_PCT_START: float = 0.99
"""fastai's ``fine_tune`` warms the head's rate up over almost all of the frozen epochs."""


def schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, epochs: int, epoch: int) -> OneCycleLR:
    """The schedule of the phase ``epoch`` is in, placed at ``epoch``: fastai's ``fine_tune`` in two one-cycles.

    Frozen phase (``cfg.frozen_epochs()``): the head alone at ``lr``, the body's rate 0, so its
    trained weights are not disturbed by the gradients of a random head. Then everything, at half
    the rate (as fine_tune halves it), each layer group at its ``lr_scale`` (``layer_groups``).
    """
    frozen = min(cfg.frozen_epochs(), epochs)
    groups = optimizer.param_groups
    if epoch < frozen:
        rates = [cfg.lr if g["head"] else 0.0 for g in groups]
        return one_cycle(optimizer, rates, steps_per_epoch, frozen, epoch, FROZEN_PCT_START)
    base = cfg.lr / 2 if frozen else cfg.lr
    return one_cycle(optimizer, [base * g["lr_scale"] for g in groups], steps_per_epoch, epochs - frozen, epoch - frozen)


def _resume(cfg: TrainConfig, model: nn.Module, step: Step) -> dict[str, Any]:
    """Load RUN/last.pt into the model, optimizer and scaler; returns the checkpoint for the rest."""
    path = cfg.out / layout.LAST
    ckpt = load_checkpoint(path)
    changed = [k for k in RESUME_KEYS if ckpt["config"].get(k) != _plain(asdict(cfg))[k]]
    if changed:
        raise IchprepError(f"--resume: {path} was made with other settings ({', '.join(changed)}); use the same options")
    unwrap(model).load_state_dict(ckpt["model"])
    step.optimizer.load_state_dict(ckpt["optimizer"])
    restore_scaler(step.scaler, ckpt["scaler"])
    return ckpt


def _plain(config: dict) -> dict:
    """The options as a checkpoint stores them: paths as text, so the file holds only plain values."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in config.items()}


def _train_epoch(run: Run, epoch: int, size: int | None) -> float:
    """One epoch; returns the mean training loss over every step of every process."""
    from tqdm import tqdm

    cfg, d = run.cfg, run.dist
    seed = epoch_seed(cfg.seed, epoch, d.rank)
    seed_everything(seed)
    transform = partial(augment, g=torch.Generator(device=d.device).manual_seed(seed)) if cfg.augment else None
    run.loader.sampler.set_epoch(epoch)
    run.model.train()
    total = torch.zeros((), dtype=torch.float64, device=d.device)
    shown, count = total.clone(), 0
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}", disable=cfg.quiet or not d.main, leave=False)
    with warnings.catch_warnings():
        # A step the GradScaler skips (an fp16 overflow, normal while the scale settles) still
        # advances the schedule, which torch reports as if the calls were out of order.
        warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
        for x, y in bar:
            loss = run.step(model_input(x, d.device, size, cfg.mean, cfg.std, transform), y.to(d.device, non_blocking=True))
            run.scheduler.step()
            total += loss
            count += 1
            if not bar.disable and count % REPORT_EVERY == 0:
                bar.set_postfix(loss=f"{(total - shown).item() / REPORT_EVERY:.4f}")
                shown = total.clone()
    mean = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=d.device)])
    if d.enabled:
        torch.distributed.all_reduce(mean)
    return float(mean[0] / mean[1])


def _validate(run: Run, val_ds: ICHDataset | None, size: int | None) -> np.ndarray | None:
    """Validation probabilities of every image on rank 0 (each rank predicts its own unpadded slice)."""
    if run.val_loader is None or val_ds is None:
        return None
    sync_buffers(run.dist, unwrap(run.model))
    p = predict_loader(unwrap(run.model), run.val_loader, run.dist.device, size, run.cfg.mean, run.cfg.std)
    return gather_rows(run.dist, run.val_positions, p, len(val_ds))


def _write_epoch(run: Run, epoch: int, record: Callable[[], dict], is_best: bool) -> None:
    out = run.cfg.out
    pd.DataFrame(run.history).to_csv(out / layout.METRICS, index=False)
    from ichprep.plots.training import plot_curves

    plot_curves(pd.DataFrame(run.history), out / layout.CURVES)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap(run.model).state_dict(),
        "optimizer": run.step.optimizer.state_dict(),
        "scaler": run.step.scaler.state_dict(),
        "epoch": epoch,
        "best": run.best,
        "history": run.history,
        "config": _plain(asdict(run.cfg)),
        "world": run.dist.world,
    }
    if is_best:
        save_atomic(ckpt, out / layout.BEST)
        save_atomic(record(), out / layout.MODEL)
    save_atomic(ckpt, out / layout.LAST)


def train(cfg: TrainConfig, say: Callable[[str], None] = print) -> list[dict]:
    """Train per `cfg`, writing RUN/last.pt, best.pt, model.pt, metrics.csv, curves.png; returns the metric rows."""
    d = setup(cfg.device)
    try:
        return _train(cfg, d, say if d.main else (lambda _msg: None))
    finally:
        teardown(d)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DistributedDataParallel's and torch.compile's wrappers (``_wrap``).

    Its state_dict keys carry neither ``module.`` nor ``_orig_mod.``, so a checkpoint or model.pt
    loads the same whether the run that wrote it (or reads it) ran under torchrun or compiled.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _wrap(model: nn.Module, cfg: TrainConfig, d: Dist) -> nn.Module:
    """The network as it trains: under DDP when torchrun started several processes, compiled on request.

    DDP goes inside torch.compile, so the compiler sees DDP's gradient buckets and overlaps their
    communication with the backward pass.
    """
    if d.enabled:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    return torch.compile(model) if cfg.compile else model


def _values(values: tuple[float, ...]) -> str:
    """A per-channel mean or std as the first line shows it: once when all channels share it, else the first three."""
    shown = values[:1] if len(set(values)) == 1 else values[:3]
    return ",".join(f"{v:.3g}" for v in shown) + (",..." if len(set(values)) > 1 and len(values) > 3 else "")


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _train(cfg: TrainConfig, d: Dist, say: Callable[[str], None]) -> list[dict]:
    if cfg.resume and not (cfg.out / layout.LAST).exists():
        raise IchprepError(f"--resume: no {cfg.out / layout.LAST} to continue from")
    torch.backends.cudnn.benchmark = d.device.type == "cuda"
    ts = prepare(open_converted(cfg.data), cfg.labels, cfg.val_frac, cfg.seed, cfg.max_images, cfg.folds, cfg.fold)
    train_ds, val_ds = datasets(cfg, ts)
    stages = cfg.stages()
    in_channels = train_ds.channels
    start_w = start_of(cfg)
    mean, std = normalisation(cfg, start_w, in_channels)
    cfg = replace(cfg, start=start_w, mean=mean, std=std)
    model = _wrap(build_model(cfg, in_channels, d.device, start_w), cfg, d)
    if d.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    for note in ts.notes:
        say(note)
    loader, val_loader, positions = make_loaders(cfg, d, train_ds, val_ds)
    lr_mult = cfg.lr_mult if start_w.kind != RANDOM else 1.0
    optimizer = torch.optim.AdamW(layer_groups(unwrap(model), cfg.wd, lr_mult), lr=cfg.lr)
    step = make_step(model, optimizer, d.device, cfg.clip)
    ckpt = _resume(cfg, model, step) if cfg.resume else {"epoch": -1, "history": [], "best": math.inf, "world": d.world}
    start = int(ckpt["epoch"]) + 1
    scheduler = schedule(optimizer, cfg, len(loader), len(stages), start)
    run = Run(cfg, d, model, step, scheduler, loader, val_loader, positions, ckpt["history"], ckpt["best"])
    final_size = stages[-1] if stages and stages[-1] else image_size(train_ds)
    frozen = min(cfg.frozen_epochs(), len(stages))
    say(f"{start_w.arch} from {start_w.describe()}, {in_channels} channels"
        + (f" ({cfg.stack})" if cfg.stack != "windows" else "")
        + f", input mean/std {_values(mean)} / {_values(std)}")
    if frozen:
        say(f"fine-tuning: {frozen} epoch(s) of the head alone, then all layers at lr {cfg.lr / 2:g} (head) "
            f"down to {cfg.lr / 2 / lr_mult:g} (stem)")
    say(f"{len(stages)} epochs of {len(loader)} steps on {d.device}"
        + (f" x {d.world} processes" if d.enabled else "")
        + f" ({precision_name(step.dtype)}{', compiled' if cfg.compile else ''}, {loader.num_workers} loader workers)"
        + (f", resuming at epoch {start + 1}" if start else ""))
    if ckpt["world"] != d.world:
        say(f"last.pt was written by {_processes(ckpt['world'])} and this run has {d.world}: the learning rate "
            f"continues from the same point of the schedule with {len(loader)} steps per epoch")
    y_val = val_ds.labels if val_ds is not None else None
    for epoch in range(start, len(stages)):
        if cfg.stop_after is not None and epoch - start >= cfg.stop_after:
            break
        if epoch == frozen and epoch != start:  # the head has had its epochs: every layer trains from here
            run.scheduler = schedule(optimizer, cfg, len(loader), len(stages), epoch)
        size = stages[epoch]
        lr = max(g["lr"] for g in optimizer.param_groups)
        train_loss = _train_epoch(run, epoch, size)
        p_val = _validate(run, val_ds, size)
        if d.main:
            row = metrics_row(epoch, size, lr, train_loss, y_val, p_val)
            run.history.append(row)
            score = row.get("val_wll", train_loss)
            is_best = score < run.best
            run.best = min(run.best, score)
            _write_epoch(run, epoch, lambda: model_record(cfg, unwrap(model).state_dict(), ts, in_channels, final_size, start_w),
                         is_best)
            say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                         if k in ("epoch", "size", "train_loss", "val_wll")))
        barrier(d)
    return run.history

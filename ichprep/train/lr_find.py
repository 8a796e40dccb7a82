"""`ichprep lr-find`: the learning-rate range test (Smith 2015, as fastai popularised it).

The learning rate grows exponentially from `start` to `end` over at most `steps` batches; the
loss is smoothed with an exponential moving average (bias-corrected) and the sweep stops once
the smoothed loss exceeds 4x its minimum. The suggestion is the rate where the smoothed loss
falls fastest (steepest negative slope against log lr), a conservative and common choice.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from ichprep import layout
from ichprep.data.batches import model_input
from ichprep.models.device import pick_device
from ichprep.store import open_converted
from ichprep.train.augment import AugmentOptions, augment
from ichprep.train.config import TrainConfig
from ichprep.train.distributed import Dist
from ichprep.train.loaders import datasets, make_loaders
from ichprep.train.network import build_model, normalisation, start_of
from ichprep.train.schedule import optimizer
from ichprep.train.step import make_step
from ichprep.train.trainset import prepare

DIVERGE: float = 4.0
"""Stop when the smoothed loss exceeds this multiple of its minimum."""


def lr_schedule(start: float, end: float, steps: int) -> np.ndarray:
    """`steps` learning rates spaced evenly on a log scale from `start` to `end`."""
    return np.geomspace(start, end, steps)


def smooth(losses: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average, as Adam corrects its moments."""
    out = np.empty(len(losses))
    avg = 0.0
    for i, value in enumerate(losses):
        avg = beta * avg + (1 - beta) * value
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest(lrs: np.ndarray, smoothed: np.ndarray, skip: int = 3) -> float:
    """The rate of steepest descent of the smoothed loss (ignoring the first noisy points)."""
    if len(lrs) < skip + 3:
        return float(lrs[int(np.argmin(smoothed))] / 10)
    slope = np.gradient(smoothed[skip:], np.log(lrs[skip:]))
    return float(lrs[skip + int(np.argmin(slope))])


def lr_find(
    cfg: TrainConfig, start: float = 1e-7, end: float = 10.0, steps: int = 100, say=print
) -> tuple[pd.DataFrame, float]:
    """Run the sweep on the training images of `cfg`; writes RUN/lr_find.csv and RUN/lr_find.png.

    Every batch goes through the training loop's own input and step (``model_input``, ``Step``):
    the same precision, loss scaling and memory layout, so the rate it suggests is one for the
    run it precedes. The loss is read every step, since the sweep stops on it.
    """
    device = pick_device(cfg.device)
    d = Dist(0, 1, device)
    ts = prepare(open_converted(cfg.data), cfg.labels, cfg.val_frac, cfg.seed, cfg.max_images, neg_ratio=cfg.neg_ratio)
    train_ds, _ = datasets(cfg, ts)
    start_w = start_of(cfg)
    mean, std = normalisation(cfg, start_w, train_ds.channels)
    cfg = replace(cfg, start=start_w, mean=mean, std=std)
    model = build_model(cfg, train_ds.channels, device, start_w)
    loader, _, _ = make_loaders(cfg, d, train_ds, None)
    step = make_step(model, optimizer(cfg.optimizer, list(model.parameters()), start, cfg.wd), device, cfg.clip)
    options = AugmentOptions(cfg.flips, cfg.rotate, cfg.scale, cfg.shift, cfg.affine_p)
    transform = partial(augment, g=torch.Generator(device=device).manual_seed(cfg.seed), options=options) if cfg.augment else None
    size = cfg.stages()[0] if cfg.sizes else None
    rows, best = [], np.inf
    model.train()
    batches = iter(())
    for lr in lr_schedule(start, end, steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        for group in step.optimizer.param_groups:
            group["lr"] = float(lr)
        loss, _ = step(model_input(x, device, size, cfg.mean, cfg.std, transform), y.to(device, non_blocking=True))
        rows.append((float(lr), loss.item()))
        smoothed = smooth(np.array([r[1] for r in rows]))[-1]
        best = min(best, smoothed)
        if not np.isfinite(smoothed) or smoothed > DIVERGE * best:
            break
    sweep = pd.DataFrame(rows, columns=["lr", "loss"])
    sweep["smoothed_loss"] = smooth(sweep["loss"].to_numpy())
    suggestion = suggest(sweep["lr"].to_numpy(), sweep["smoothed_loss"].to_numpy())
    cfg.out.mkdir(parents=True, exist_ok=True)
    sweep.to_csv(cfg.out / layout.LR_FIND, index=False)
    from ichprep.plots.training import plot_lr_find

    plot_lr_find(sweep, suggestion, cfg.out / layout.LR_FIND_PLOT)
    say(f"{len(sweep)} steps from {start:.0e}; suggested lr: {suggestion:.2e}")
    return sweep, suggestion

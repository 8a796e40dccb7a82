"""`ichprep train`: a plain-PyTorch training loop over convert's output.

AdamW with a one-cycle schedule, the competition's weighted BCE (any = 2, subtypes = 1), batch
augmentation on the device, bf16 autocast and channels_last on CUDA, optional progressive
resizing, checkpoints every epoch that resume exactly, and DistributedDataParallel when launched
by torchrun. Exact resume works because every epoch reseeds all generators from (seed, epoch):
an epoch's shuffle, augmentation and dropout never depend on what ran before it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, Subset

from ichprep import LABELS, __version__
from ichprep.augment import augment
from ichprep.checkpoint import load, rng_state, save_atomic, seed_everything, set_rng_state
from ichprep.convert import load_settings
from ichprep.data import MEAN, STD, ICHDataset, make_dataset, normalise
from ichprep.distributed import Dist, barrier, gather_rows, setup, sync_buffers, teardown
from ichprep.metrics import LABEL_WEIGHTS, summary
from ichprep.models import build, load_pretrained
from ichprep.trainset import TrainSet, prepare

RESUME_KEYS: tuple[str, ...] = ("arch", "epochs", "batch_size", "lr", "wd", "sizes", "stage_epochs", "neighbours", "seed", "max_images")
"""Settings a resumed run must share with the run it continues (else it would not be the same run)."""


@dataclass
class TrainConfig:
    """The options of `ichprep train`, one to one."""

    data: Path
    out: Path
    labels: Path | None = None
    arch: str = "resnet18"
    weights: Path | None = None
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    wd: float = 1e-2
    sizes: tuple[int, ...] = ()
    stage_epochs: tuple[int, ...] = ()
    val_frac: float | None = None
    seed: int = 42
    workers: int = 2
    resume: bool = False
    neighbours: int = 0
    device: str = "auto"
    quiet: bool = False
    max_images: int | None = None
    clip: float = 1.0
    augment: bool = True
    stop_after: int | None = None
    mean: float = MEAN
    std: float = STD

    def stages(self) -> list[int | None]:
        """The image size of every epoch: progressive resizing, or None (stored size) throughout."""
        if not self.sizes:
            return [None] * self.epochs
        counts = list(self.stage_epochs)
        if not counts:
            base, extra = divmod(self.epochs, len(self.sizes))
            counts = [base + (k < extra) for k in range(len(self.sizes))]
        if len(counts) != len(self.sizes):
            raise ValueError(f"--stage-epochs has {len(counts)} entries for {len(self.sizes)} --sizes")
        return [s for s, n in zip(self.sizes, counts) for _ in range(n)]


class EpochSampler(Sampler[int]):
    """A shuffling sampler whose order is a pure function of (seed, epoch), like DistributedSampler's."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from the seed torch gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The metric as a loss: per-label BCE weighted (2, 1, 1, 1, 1, 1), over sum(w), averaged over images."""
    losses = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")
    return (losses * weights).sum(dim=1).div(weights.sum()).mean()


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on a GPU that has it, fp16 (with a GradScaler) on older GPUs, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resize_batch(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Progressive resizing on the fly: area averaging to shrink, bilinear to grow."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    if size < x.shape[-1]:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    size: int | None,
    tta: bool = False,
    quiet: bool = True,
    mean: float = MEAN,
    std: float = STD,
) -> np.ndarray:
    """Sigmoid probabilities for every item of `loader`, in order; `tta` averages with horizontal flips."""
    from tqdm import tqdm

    model.eval()
    dtype = amp_dtype(device)
    out = []
    for x, _ in tqdm(loader, desc="predict", disable=quiet, leave=False):
        x = resize_batch(normalise(x.to(device, non_blocking=True), mean, std), size)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            p = torch.sigmoid(model(x).float())
            if tta:
                p = (p + torch.sigmoid(model(torch.flip(x, dims=[3])).float())) / 2
        out.append(p.cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(LABELS)))


def image_size(ds: ICHDataset) -> int:
    """The side length of the stored images (read from the first item)."""
    return int(ds.source.read(int(ds.rows[0, 0])).shape[0])


def model_record(cfg: TrainConfig, state: dict, ts: TrainSet, in_channels: int, size: int) -> dict:
    """Everything `ichprep predict` needs, and nothing it has to guess."""
    return {
        "arch": cfg.arch,
        "state_dict": state,
        "in_channels": in_channels,
        "neighbours": cfg.neighbours,
        "size": size,
        "settings": load_settings(cfg.data),
        "mean": cfg.mean,
        "std": cfg.std,
        "labels": list(LABELS),
        "train_pos_rate": ts.train_rate.tolist(),
        "true_pos_rate": ts.true_rate.tolist(),
        "ichprep_version": __version__,
    }


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


def make_loaders(cfg: TrainConfig, d: Dist, train_ds: ICHDataset, val_ds: ICHDataset | None) -> tuple[DataLoader, DataLoader | None, np.ndarray]:
    """Training loader (seeded shuffle, whole batches) and this rank's unpadded validation slice."""
    from torch.utils.data.distributed import DistributedSampler

    common = dict(num_workers=cfg.workers, pin_memory=d.device.type == "cuda", worker_init_fn=seed_worker,
                  persistent_workers=cfg.workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    if d.enabled:
        sampler = DistributedSampler(train_ds, d.world, d.rank, shuffle=True, seed=cfg.seed)
    else:
        sampler = EpochSampler(len(train_ds), cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=True, **common)
    if len(loader) == 0:
        raise ValueError(f"{len(train_ds)} training images per process is less than one batch of {cfg.batch_size}")
    if val_ds is None or not len(val_ds):
        return loader, None, np.zeros(0, dtype=np.int64)
    positions = np.arange(len(val_ds))[d.rank :: d.world]
    val_loader = DataLoader(Subset(val_ds, positions.tolist()), batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return loader, val_loader, positions


def _resume(run: Run, path: Path) -> int:
    """Load last.pt into the run; returns the first epoch still to do."""
    ckpt = load(path)
    changed = [k for k in RESUME_KEYS if ckpt["config"].get(k) != asdict(run.cfg)[k]]
    if changed:
        raise ValueError(f"--resume: {path} was made with other settings ({', '.join(changed)}); use the same options")
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


def build_model(cfg: TrainConfig, in_channels: int, device: torch.device) -> nn.Module:
    """The network of `cfg.arch`, with the user's pretrained weights when given, on `device`."""
    seed_everything(cfg.seed)
    model = build(cfg.arch, num_classes=len(LABELS), in_channels=in_channels)
    if cfg.weights is not None:
        load_pretrained(model, cfg.weights)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def datasets(cfg: TrainConfig, ts: TrainSet) -> tuple[ICHDataset, ICHDataset | None]:
    """Train and validation Datasets of a TrainSet with the run's neighbours and normalisation."""
    def make(ids: list[str]) -> ICHDataset:
        return make_dataset(ts.source, ids, ts.labels, ts.series, cfg.neighbours)

    return make(ts.train_ids), (make(ts.val_ids) if ts.val_ids else None)


def train(cfg: TrainConfig, say: Callable[[str], None] = print) -> list[dict]:
    """Train per `cfg`, writing RUN/last.pt, best.pt, model.pt, metrics.csv, curves.png; returns the metric rows."""
    d = setup(cfg.device)
    try:
        return _train(cfg, d, say if d.main else (lambda _msg: None))
    finally:
        teardown(d)


def _train(cfg: TrainConfig, d: Dist, say: Callable[[str], None]) -> list[dict]:
    if cfg.resume and not (cfg.out / "last.pt").exists():
        raise FileNotFoundError(f"--resume: no {cfg.out / 'last.pt'} to continue from")
    if d.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cudnn.benchmark = d.device.type == "cuda"
    ts = prepare(cfg.data, cfg.labels, cfg.val_frac, cfg.seed, cfg.max_images)
    for note in ts.notes:
        say(note)
    train_ds, val_ds = datasets(cfg, ts)
    stages = cfg.stages()
    in_channels = train_ds.channels
    model = build_model(cfg, in_channels, d.device)
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

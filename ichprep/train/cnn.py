"""`ichprep train`: a timm CNN trained on convert's output, on the engine (``train.engine``).

AdamW or Adam with a one-cycle or another schedule (``train.schedule``), the competition's weighted
BCE (any = 2, subtypes = 1), batch augmentation on the device (``train.augment``), gradient
accumulation, autocast in the GPU's precision (``models.device.precision``) and channels_last on
CUDA, optional progressive resizing and torch.compile, and DistributedDataParallel when launched
by torchrun. Validation is on every labelled image of the held-out patients, its probabilities
corrected from the rate the model learned to the true one (``train.trainset``), so the best
epoch is the one that predicts the leaderboard's distribution best.

Exact resume works because every epoch reseeds all generators from (seed, epoch, rank): an
epoch's shuffle, augmentation and dropout never depend on what ran before it. The learning rate
is a function of the point reached in the run, rebuilt on resume, so a run resumed with another
number of processes continues the same schedule to the same end.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ichprep import layout
from ichprep.data.batches import model_input
from ichprep.data.dataset import image_size
from ichprep.metrics import prior_correct
from ichprep.models.apply import Inputs, predict_loader
from ichprep.models.backbones import layer_groups
from ichprep.models.device import precision_name
from ichprep.models.pretrained import RANDOM, Start
from ichprep.models.saved import CnnModel, save
from ichprep.store import open_converted
from ichprep.train.augment import AugmentOptions, augment
from ichprep.train.checkpoint import CHECKPOINT_FORMAT, Checkpoint, epoch_seed, restore_scaler, seed_everything
from ichprep.train.config import RESUME_KEYS, TrainConfig
from ichprep.train.distributed import Dist, gather_rows, setup, sync_buffers, teardown, unwrap
from ichprep.train.engine import Callback, Engine, plain
from ichprep.train.loaders import datasets, make_loaders
from ichprep.train.network import build_model, model_record, normalisation, start_of
from ichprep.train.schedule import Schedule, one_cycle, optimizer, place
from ichprep.train.step import Step, make_step
from ichprep.train.trainset import TrainSet, prepare

REPORT_EVERY: int = 50
"""Steps between two readings of the loss for the progress bar: each reading makes the host wait
for the GPU, which every step would otherwise leave queued with work."""
FROZEN_PCT_START: float = 0.99
"""fastai's ``fine_tune`` warms the head's rate up over almost all of the frozen epochs."""


def schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, epochs: int, epoch: int):
    """The schedule of the phase ``epoch`` is in, placed at ``epoch``: fastai's ``fine_tune`` in two phases.

    Frozen phase (``cfg.frozen_epochs()``): the head alone at ``lr`` in one cycle, the body's rate 0,
    so its trained weights are not disturbed by the gradients of a random head. Then everything by
    ``cfg.schedule``, at half the rate after a frozen phase (as fine_tune halves it), each layer
    group at its ``lr_scale`` (``layer_groups``).
    """
    frozen = min(cfg.frozen_epochs(), epochs)
    groups = opt.param_groups
    if epoch < frozen:
        return one_cycle(opt, [cfg.lr if g["head"] else 0.0 for g in groups], steps_per_epoch, frozen, epoch, FROZEN_PCT_START)
    base = cfg.lr / 2 if frozen else cfg.lr
    return place(Schedule.parse(cfg.schedule), opt, [base * g["lr_scale"] for g in groups], steps_per_epoch, epochs - frozen,
                 epoch - frozen)


@dataclass
class CnnTask:
    """The live objects of a CNN run, and what the engine asks of them."""

    cfg: TrainConfig
    dist: Dist
    model: nn.Module
    step: Step
    loader: DataLoader
    val_loader: DataLoader | None
    val_positions: np.ndarray
    val_labels: np.ndarray | None
    ts: TrainSet
    stages: list[int | None]
    scheduler: object = None

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch (batches, grouped by ``--accumulate``)."""
        return -(-len(self.loader) // self.cfg.accumulate)

    def begin_epoch(self, epoch: int, first: bool) -> None:
        if first or epoch == min(self.cfg.frozen_epochs(), len(self.stages)):  # the head has had its epochs
            self.scheduler = schedule(self.step.optimizer, self.cfg, self.steps, len(self.stages), epoch)

    def lr(self) -> float:
        return max(g["lr"] for g in self.step.optimizer.param_groups)

    def columns(self, epoch: int) -> dict:
        return {"size": self.stages[epoch]}

    def train_epoch(self, epoch: int) -> float:
        """One epoch; the mean training loss over every step of every process."""
        from tqdm import tqdm

        cfg, d = self.cfg, self.dist
        seed = epoch_seed(cfg.seed, epoch, d.rank)
        seed_everything(seed)
        options = AugmentOptions(cfg.flips, cfg.rotate, cfg.scale, cfg.shift, cfg.affine_p)
        transform = partial(augment, g=torch.Generator(device=d.device).manual_seed(seed), options=options) if cfg.augment else None
        self.loader.sampler.set_epoch(epoch)
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=d.device)
        shown, count = total.clone(), 0
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}", disable=cfg.quiet or not d.main, leave=False)
        with warnings.catch_warnings():
            # A step the GradScaler skips (an fp16 overflow, normal while the scale settles) still
            # advances the schedule, which torch reports as if the calls were out of order.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
            for x, y in bar:
                count += 1
                x = model_input(x, d.device, self.stages[epoch], cfg.mean, cfg.std, transform)
                loss, stepped = self.step(x, y.to(d.device, non_blocking=True), last=count == len(self.loader))
                if stepped:
                    self.scheduler.step()
                total += loss
                if not bar.disable and count % REPORT_EVERY == 0:
                    bar.set_postfix(loss=f"{(total - shown).item() / REPORT_EVERY:.4f}")
                    shown = total.clone()
        mean = torch.stack([total, torch.tensor(float(count), dtype=torch.float64, device=d.device)])
        if d.enabled:
            torch.distributed.all_reduce(mean)
        return float(mean[0] / mean[1])

    def validate(self, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Every validation image's labels and probabilities, corrected to the true rate, on rank 0 (each rank
        predicts its own unpadded slice)."""
        if self.val_loader is None:
            return None
        sync_buffers(self.dist, unwrap(self.model))
        inputs = Inputs(self.stages[epoch], self.cfg.mean, self.cfg.std)
        p = predict_loader(unwrap(self.model), self.val_loader, self.dist.device, inputs)
        p = gather_rows(self.dist, self.val_positions, p, len(self.val_labels))
        return None if p is None else (self.val_labels, prior_correct(p, self.ts.true_rate, self.ts.train_rate))

    def state(self) -> dict:
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.step.optimizer.state_dict(),
                "scaler": self.step.scaler.state_dict()}

    def restore(self, ckpt: Checkpoint) -> list[str]:
        unwrap(self.model).load_state_dict(ckpt.model)
        self.step.optimizer.load_state_dict(ckpt.optimizer)
        restore_scaler(self.step.scaler, ckpt.scaler)
        if ckpt.world == self.dist.world:
            return []
        return [f"last.pt was written by {_processes(ckpt.world)} and this run has {self.dist.world}: the learning rate "
                f"continues from the same point of the schedule with {self.steps} steps per epoch"]


@dataclass
class SaveRecord(Callback):
    """model.pt at the best epoch; with ``snapshots``, every epoch's record as epoch<N>.pt too."""

    record: Callable[[int, str], CnnModel]
    out: Path
    snapshots: bool

    def after_epoch(self, engine: Engine, epoch: int, row: dict, is_best: bool) -> None:
        if not (is_best or self.snapshots):
            return
        made = self.record(epoch, engine.run)
        if is_best:
            save(made, self.out / layout.MODEL)
        if self.snapshots:
            save(made, self.out / layout.SNAPSHOT.format(epoch + 1))


def train(cfg: TrainConfig, say: Callable[[str], None] = print) -> list[dict]:
    """Train per `cfg`, writing RUN/last.pt, best.pt, model.pt, metrics.csv, curves.png; returns the metric rows."""
    d = setup(cfg.device)
    try:
        return _train(cfg, d, say if d.main else (lambda _msg: None))
    finally:
        teardown(d)


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


def _lr_mult(cfg: TrainConfig, start: Start) -> float:
    """The stem's rate divisor: ``--lr-mult`` from trained weights; from random ones there is nothing to protect (1)."""
    return cfg.lr_mult if start.kind != RANDOM else 1.0


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _task(cfg: TrainConfig, d: Dist, ts: TrainSet) -> tuple[CnnTask, TrainConfig, Start, int]:
    """The run's network, optimizer, loaders and task, its options completed (starting weights, normalisation)."""
    train_ds, val_ds = datasets(cfg, ts)
    start_w = start_of(cfg)
    mean, std = normalisation(cfg, start_w, train_ds.channels)
    cfg = replace(cfg, start=start_w, mean=mean, std=std)
    model = _wrap(build_model(cfg, train_ds.channels, d.device, start_w), cfg, d)
    loader, val_loader, positions = make_loaders(cfg, d, train_ds, val_ds, partial(ts.epoch_rows, seed=cfg.seed))
    opt = optimizer(cfg.optimizer, layer_groups(unwrap(model), cfg.wd, _lr_mult(cfg, start_w)), cfg.lr, cfg.wd)
    step = make_step(model, opt, d.device, cfg.clip, cfg.accumulate)
    task = CnnTask(cfg, d, model, step, loader, val_loader, positions, val_ds.labels if val_ds is not None else None, ts,
                   cfg.stages())
    final = task.stages[-1] if task.stages and task.stages[-1] else image_size(train_ds)
    return task, cfg, start_w, final


def _announce(task: CnnTask, start_w: Start, start: int, say: Callable[[str], None]) -> None:
    """The run's first lines: the network and its input, the fine-tuning, the epochs and where they run."""
    cfg, d = task.cfg, task.dist
    channels = len(cfg.mean)
    say(f"{start_w.arch} from {start_w.describe()}, {channels} channels" + (f" ({cfg.stack})" if cfg.stack != "windows" else "")
        + f", input mean/std {_values(cfg.mean)} / {_values(cfg.std)}")
    frozen, lr_mult = min(cfg.frozen_epochs(), len(task.stages)), _lr_mult(cfg, start_w)
    if frozen:
        say(f"fine-tuning: {frozen} epoch(s) of the head alone, then all layers at lr {cfg.lr / 2:g} (head) "
            f"down to {cfg.lr / 2 / lr_mult:g} (stem)")
    say(f"{len(task.stages)} epochs of {task.steps} steps on {d.device}" + (f" x {d.world} processes" if d.enabled else "")
        + f" ({precision_name(task.step.dtype)}{', compiled' if cfg.compile else ''}, {task.loader.num_workers} loader workers"
        + (f", {cfg.accumulate} batches a step" if cfg.accumulate > 1 else "") + ")"
        + (f", resuming at epoch {start + 1}" if start else ""))


def _train(cfg: TrainConfig, d: Dist, say: Callable[[str], None]) -> list[dict]:
    torch.backends.cudnn.benchmark = d.device.type == "cuda"
    ts = prepare(open_converted(cfg.data), cfg.labels, cfg.val_frac, cfg.seed, cfg.max_images, cfg.folds, cfg.fold, cfg.neg_ratio)
    task, cfg, start_w, final = _task(cfg, d, ts)
    record = lambda epoch, run: model_record(cfg, unwrap(task.model).state_dict(), ts, len(cfg.mean), final, start_w,  # noqa: E731
                                             epoch, run)
    engine = Engine(cfg.out, len(task.stages), CHECKPOINT_FORMAT, plain(asdict(cfg)), RESUME_KEYS, say, cfg.resume,
                    cfg.stop_after, d.main, d.world, partial(_barrier, d), [SaveRecord(record, cfg.out, cfg.snapshots)])
    if d.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
    for note in ts.notes:
        say(note)
    start = engine.start(task)
    _announce(task, start_w, start, say)
    history = engine.fit(task, start)
    engine.stopped()
    return history


def _barrier(d: Dist) -> None:
    if d.enabled:
        torch.distributed.barrier()

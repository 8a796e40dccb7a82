"""`ichprep train-series`: the sequence model trained on a `--folds` run's out-of-fold embeddings, on the engine.

Every labelled image of every series of the run is embedded by the fold CNN that did not train on
it (so the second stage never learns from outputs a CNN made on its own training images, which
are over-confident), and, since the folds validated on every labelled image of their patients,
the series are complete, as test series are. They are put in slice order (``order.series_order``)
and the sequence model learns the competition's weighted loss on whole series, validated on
held-out patients, by the same engine as `train` (metrics.csv, curves.png, last.pt and best.pt
every epoch, exact resume, ``--stop-after``). The embeddings are kept in
SRUN/oof_embeddings.parquet, keyed by the fold models they came from and the TTA views, so a
resumed or re-tuned run does not embed again and a re-trained run is never paired with old ones.
With ``--cnn-epochs`` one sequence model is trained per CNN epoch (in SRUN/cnn-epoch<N>/), and
the two-stage model averages them, as the 2nd place of 2019 did.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ichprep import atomic, layout, strict_json
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.errors import IchprepError
from ichprep.metrics import LABEL_WEIGHTS, weighted_log_loss
from ichprep.models.apply import Embedded, default_batch, embed_ids
from ichprep.models.device import pick_device
from ichprep.models.saved import CnnModel, SeriesNet, SeriesPart, TwoStage, load_cnn, rates, save
from ichprep.models.series_net import SeriesModel, padded, series_probs
from ichprep.series import embeddings
from ichprep.series.config import RESUME_KEYS, FoldRun, SeriesConfig, fold_run
from ichprep.series.order import series_order
from ichprep.series.stage import Stage, augmented, baselines, stage_data
from ichprep.store import Converted, open_converted
from ichprep.train.checkpoint import SERIES_CHECKPOINT, Checkpoint, epoch_seed, load_checkpoint, seed_everything
from ichprep.train.engine import Callback, Engine, plain
from ichprep.train.folds import fold_dir
from ichprep.train.loss import weighted_bce
from ichprep.train.schedule import Schedule, optimizer, place
from ichprep.train.trainset import TrainSet, prepare


def held_out(run: FoldRun, data: Converted, fold: int) -> TrainSet:
    """What fold ``fold`` of the run validated on (every labelled image of its patients), as the run decided it."""
    c = run.config
    return prepare(data, c["labels"], None, c["seed"], c["max_images"], c["folds"], fold, c["neg_ratio"])


def cnn_records(run: FoldRun, epoch: int | None) -> list[CnnModel]:
    """The run's fold CNNs: each fold's model.pt, or its snapshot of CNN epoch ``epoch`` (``train --snapshots``)."""
    name = layout.MODEL if epoch is None else layout.SNAPSHOT.format(epoch)
    paths = [fold_dir(run.folder, f) / name for f in run.folds]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise IchprepError(f"--cnn-epochs {epoch}: RUN {run.folder} has no {missing[0].relative_to(run.folder)}; "
                           "train the folds with --snapshots to keep every epoch")
    return [load_cnn(p) for p in paths]


def oof_embeddings(cfg: SeriesConfig, run: FoldRun, cnns: list[CnnModel], held: Callable[[int], TrainSet], data: Converted,
                   out: Path, device: torch.device, say: Callable[[str], None]) -> pd.DataFrame:
    """Every image the run's folds held out (``held``: what each fold validated on), embedded by the fold that held it
    out: read from ``out``'s cache when it was made by these very fold models with these views, else made and cached."""
    path = out / layout.OOF_EMBEDDINGS
    key = {"tta": ",".join(cfg.tta), "models": ";".join(c.identity for c in cnns)}
    if path.exists() and all(embeddings.metadata(path).get(k) == v for k, v in key.items()):
        say(f"out-of-fold embeddings: {path} (already made)")
        return pd.read_parquet(path)
    workers, prefetch = loader_workers(cfg.workers, device, 1, usable_cores())
    parts = []
    for fold, record in zip(run.folds, cnns):
        ids = held(fold).val_ids
        emb = embed_ids(record, data, ids, device, cfg.tta, cfg.embed_batch or default_batch(device), workers, prefetch, cfg.quiet)
        say(f"fold {fold}: embedded its {len(emb.ids)} held-out images ({emb.features.shape[1]} features"
            + (f", TTA {key['tta']}" if cfg.tta else "") + ")")
        parts.append((emb, fold))
    ids = [i for emb, _ in parts for i in emb.ids]
    order, notes = series_order(data, ids)
    for note in notes:
        say(note)
    every = Embedded(ids, np.concatenate([e.features for e, _ in parts]), np.concatenate([e.logits for e, _ in parts]))
    table = embeddings.frame(every, order, np.concatenate([[f] * len(e.ids) for e, f in parts]))
    out.mkdir(parents=True, exist_ok=True)
    embeddings.write(table, path, key)
    return table


@dataclass
class SeriesTask:
    """The live objects of a sequence model's run, and what the engine asks of them."""

    cfg: SeriesConfig
    stage: Stage
    model: SeriesModel
    opt: torch.optim.Optimizer
    device: torch.device
    scheduler: object = None

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(~self.stage.valid)

    @property
    def val_idx(self) -> np.ndarray:
        return np.flatnonzero(self.stage.valid)

    @property
    def steps(self) -> int:
        return math.ceil(len(self.train_idx) / self.cfg.batch_size)

    def begin_epoch(self, epoch: int, first: bool) -> None:
        if first:
            rates = [self.cfg.lr] * len(self.opt.param_groups)
            self.scheduler = place(Schedule.parse(self.cfg.schedule), self.opt, rates, self.steps, self.cfg.epochs, epoch)

    def lr(self) -> float:
        return max(g["lr"] for g in self.opt.param_groups)

    def columns(self, epoch: int) -> dict:
        return {}

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training series in a seeded order, each augmented; the mean weighted loss of its steps."""
        seed = epoch_seed(self.cfg.seed, epoch, 0)
        seed_everything(seed)
        rng = np.random.default_rng(seed)
        self.model.train()
        weights = torch.tensor(LABEL_WEIGHTS, device=self.device)
        order = self.train_idx[torch.randperm(len(self.train_idx)).numpy()]
        losses = []
        for k in range(0, len(order), self.cfg.batch_size):
            chosen = order[k : k + self.cfg.batch_size]
            rows = [(i, augmented(len(self.stage.inputs[i]), rng, self.cfg.seq_aug, self.cfg.crop)) for i in chosen]
            x, lengths = padded([self.stage.inputs[i][r.copy()].float() for i, r in rows])
            y, _ = padded([self.stage.targets[i][r.copy()] for i, r in rows])
            mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(self.device)
            loss = weighted_bce(self.model(x.to(self.device), lengths)[mask], y.to(self.device)[mask], weights)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.scheduler.step()
            losses.append(float(loss.detach()))
        return float(np.mean(losses))

    def probabilities(self, networks: list[SeriesModel]) -> np.ndarray:
        """The validation slices' probabilities, averaged over ``networks`` (a bag) and, with ``reverse``, both orders."""
        inputs = [self.stage.inputs[i] for i in self.val_idx]
        return np.mean([np.concatenate(series_probs(n, inputs, self.device, reverse=self.cfg.reverse)) for n in networks], axis=0)

    def validate(self, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not len(self.val_idx):
            return None
        return self.stage.labels(self.val_idx), self.probabilities([self.model])

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}

    def restore(self, ckpt: Checkpoint) -> list[str]:
        self.model.load_state_dict(ckpt.model)
        self.opt.load_state_dict(ckpt.optimizer)
        return []


@dataclass
class Bag(Callback):
    """The weights of the last ``size`` epochs, whose predictions the model averages (the 2nd place's epoch bagging)."""

    size: int
    model: SeriesModel
    states: list[dict] | None = None

    def after_epoch(self, engine: Engine, epoch: int, row: dict, is_best: bool) -> None:
        kept = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.states = ((self.states or []) + [kept])[-self.size :]

    def extra(self) -> dict:
        return {"bag": self.states or []}

    def restore(self, extra: dict) -> None:
        self.states = list(extra.get("bag", []))


def _describe(cfg: SeriesConfig, stage: Stage, task: SeriesTask, device: torch.device) -> str:
    """The first line of a sequence model's run: its data, its network, its epochs."""
    shape = task.model.shape
    inputs = f"{shape.features} features" + (" and their deltas" if shape.deltas else "") + (", slice spacing" if shape.spacing else "")
    conv = f", 1-D conv {cfg.conv} dilated {','.join(map(str, cfg.dilations))}" if cfg.conv else ""
    return (f"{len(stage.groups)} series ({len(task.train_idx)} train / {len(task.val_idx)} validation, whole patients), "
            f"bidirectional {cfg.cell.upper()} x {cfg.layers}, hidden {cfg.hidden}{conv}, inputs {inputs} + 6 logits; "
            f"{cfg.epochs} epochs on {device}" + (f", the last {cfg.bags} averaged" if cfg.bags > 1 else ""))


def fit_part(cfg: SeriesConfig, stage: Stage, out: Path, resume: bool, device: torch.device,
             say: Callable[[str], None]) -> tuple[SeriesNet, SeriesTask] | None:
    """One sequence model trained on ``stage`` into ``out``; its weights (a bag, or the best epoch's), or None when stopped."""
    shape = cfg.shape(embeddings.width(stage.table))
    seed_everything(cfg.seed)
    model = SeriesModel(shape).to(device)
    task = SeriesTask(cfg, stage, model, optimizer(cfg.optimizer, list(model.parameters()), cfg.lr, cfg.wd), device)
    bag = [Bag(cfg.bags, model)] if cfg.bags > 1 else []
    config = {k: v for k, v in plain(asdict(cfg)).items() if k in RESUME_KEYS}
    engine = Engine(out, cfg.epochs, SERIES_CHECKPOINT, config, RESUME_KEYS, say, resume, cfg.stop_after, callbacks=bag)
    start = engine.start(task)
    if start >= cfg.epochs:
        say(f"sequence model: finished already ({out})")
    else:
        say(_describe(cfg, stage, task, device) + (f", resuming at epoch {start + 1}" if start else ""))
    engine.fit(task, start)
    if engine.stopped():
        return None
    states = bag[0].states if bag else [load_checkpoint(out / layout.BEST, SERIES_CHECKPOINT).model]
    return SeriesNet(shape.plain(), states), task


@dataclass
class Trained:
    """A trained part: its CNNs and sequence model, the task it trained in, and each fold CNN's (learned, true) rates."""

    part: SeriesPart
    task: SeriesTask
    rates: dict[int, tuple[np.ndarray, np.ndarray]]


def _part(cfg: SeriesConfig, run: FoldRun, held: Callable[[int], TrainSet], data: Converted, epoch: int | None, out: Path,
          resume: bool, device: torch.device, say: Callable[[str], None]) -> Trained | None:
    """The part of CNN epoch ``epoch`` (None: the folds' model.pt) trained into ``out``; None when it stopped early."""
    cnns = cnn_records(run, epoch)
    table = oof_embeddings(cfg, run, cnns, held, data, out, device, say)
    population = held(run.folds[0])
    stage = stage_data(table, population.labels, population.patients, cfg.features, cfg.val_frac, cfg.seed)
    fitted = fit_part(cfg, stage, out, resume, device, say)
    if fitted is None:
        return None
    return Trained(SeriesPart(cnns, fitted[0]), fitted[1], {f: rates(r) for f, r in zip(run.folds, cnns)})


def train_series(cfg: SeriesConfig, say: Callable[[str], None] = print) -> dict:
    """Train per ``cfg``, writing SRUN/oof_embeddings.parquet, metrics.csv, curves.png, last.pt, best.pt, model.pt and
    scores.json (one sequence model per ``--cnn-epochs`` in its own folder); returns the scores ({} when stopped)."""
    device, run = pick_device(cfg.device), fold_run(cfg.run)
    data = open_converted(run.data)
    held = cache(partial(held_out, run, data))  # each fold's split made once, whatever the parts and folds that ask
    made = []
    for k, (epoch, out) in enumerate(cfg.parts()):
        if epoch is not None:
            say(f"CNN epoch {epoch} -> {out}")
        part = _part(cfg, run, held, data, epoch, out, cfg.resume and (k == 0 or (out / layout.LAST).exists()), device, say)
        if part is None:
            return {}
        made.append(part)
    return _finish(cfg, made, say)


def _finish(cfg: SeriesConfig, made: list[Trained], say: Callable[[str], None]) -> dict:
    """The two-stage model.pt and scores.json of the trained parts (the last part's CNNs are the baselines), said.

    The sequence models learned the true positive rate from complete series, so the record's learned and true rates
    are one: its predictions need no correction.
    """
    task, stage = made[-1].task, made[-1].task.stage
    scores = {}
    if len(task.val_idx):
        probs = np.mean([m.task.probabilities(m.part.series.networks(m.task.device)) for m in made], axis=0)
        scores = {"series": weighted_log_loss(stage.labels(task.val_idx), probs), **baselines(stage, task.val_idx, made[-1].rates)}
    scores = {f"val_{k}_wll": v for k, v in scores.items()}
    rate = np.concatenate([t.numpy() for t in stage.targets]).astype(np.float64).mean(axis=0).tolist()
    record = TwoStage([m.part for m in made], list(cfg.tta), cfg.reverse, rate, rate, scores)
    save(record, cfg.out / layout.MODEL)
    atomic.write_bytes(cfg.out / layout.SERIES_SCORES, strict_json.dumps(scores, indent=2).encode())
    if scores:
        say(f"validation weighted log loss: fold CNNs {scores['val_cnn_learned_wll']:.4f} as they learned, "
            f"{scores['val_cnn_wll']:.4f} at the true rates, smoothed along the series {scores['val_smoothed_wll']:.4f}, "
            f"series model {scores['val_series_wll']:.4f}")
    return scores

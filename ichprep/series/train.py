"""`ichprep train-series`: the sequence model trained on a `--folds` run's out-of-fold embeddings.

Every labelled image is embedded by the fold CNN that did not train on it (so the second stage
never learns from outputs a CNN made on its own training images, which are over-confident), the
series are put in slice order (``order.series_order``), and the sequence model learns the
competition's weighted loss on whole series, validated on held-out patients. Like `train`: one
metrics.csv row and curves.png per epoch, last.pt every epoch, exact resume (each epoch reseeds
from (seed, epoch)). The embeddings are kept in SRUN/oof_embeddings.parquet, so a resumed or
re-tuned run does not embed again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ichprep import LABELS, atomic, layout, strict_json
from ichprep.errors import IchprepError
from ichprep.metrics import LABEL_WEIGHTS, weighted_log_loss
from ichprep.models.saved import load_plain
from ichprep.series import embed
from ichprep.series.model import series_probs
from ichprep.series.network import build, series_record
from ichprep.series.order import series_order
from ichprep.series.smooth import smoothed
from ichprep.splits import patient_folds
from ichprep.store import Converted, open_converted
from ichprep.train.checkpoint import epoch_seed, save_atomic, seed_everything
from ichprep.train.folds import fold_dir
from ichprep.train.loss import weighted_bce
from ichprep.train.trainset import prepare, resolve_labels

SERIES_CHECKPOINT = "ichprep-series-checkpoint/1"
RESUME_KEYS: tuple[str, ...] = ("run", "tta", "cell", "hidden", "layers", "conv", "features", "epochs", "batch_size", "lr", "wd",
                                "dropout", "val_frac", "seed")


@dataclass
class SeriesConfig:
    """The options of `ichprep train-series`, one to one."""

    run: Path
    out: Path
    tta: tuple[str, ...] = ()
    cell: str = "gru"
    hidden: int = 64
    layers: int = 2
    conv: int = 0
    features: bool = True
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    wd: float = 1e-2
    dropout: float = 0.2
    val_frac: float = 0.2
    seed: int = 42
    device: str = "auto"
    workers: int | None = None
    embed_batch: int | None = None
    quiet: bool = False
    resume: bool = False
    stop_after: int | None = None


def run_config(run: Path) -> dict:
    """The options a `--folds` RUN was trained with (from its first fold's last.pt); refuses anything else."""
    first = fold_dir(run, 0) / layout.LAST
    if not first.exists() or not (run / layout.OOF).exists():
        raise IchprepError(f"RUN {run} is not a finished `ichprep train --folds` run (no {first.name} in fold0/ or no oof.csv)")
    config = load_plain(first, f"RUN {run}: {first} is not a checkpoint of this ichprep")["config"]
    return config


@dataclass
class Stage:
    """The second stage's data: per series (slice order) its rows, inputs and labels, and which are validation."""

    table: pd.DataFrame
    groups: list[np.ndarray]
    inputs: list[torch.Tensor]
    targets: list[torch.Tensor]
    valid: np.ndarray


def oof_embeddings(cfg: SeriesConfig, rc: dict, data: Converted, device: torch.device, say: Callable[[str], None]) -> pd.DataFrame:
    """Every image of the run embedded by the fold that held it out (cached in SRUN/oof_embeddings.parquet for this --tta)."""
    from ichprep.data.workers import loader_workers, usable_cores
    from ichprep.models.saved import load_model, load_record

    path = cfg.out / layout.OOF_EMBEDDINGS
    tta = ",".join(cfg.tta)
    if path.exists():
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        if meta.get(b"tta", b"").decode() == tta:
            say(f"out-of-fold embeddings: {path} (already made)")
            return pd.read_parquet(path)
    workers, prefetch = loader_workers(cfg.workers, device, 1, usable_cores())
    batch = cfg.embed_batch or (256 if device.type == "cuda" else 64)
    parts = []
    for fold in range(int(rc["folds"])):
        ts = prepare(data, rc["labels"], None, rc["seed"], rc["max_images"], rc["folds"], fold)
        record = load_record(fold_dir(cfg.run, fold) / layout.MODEL)
        model = load_model(record, device)
        emb = embed.embed_ids(model, record, data, ts.val_ids, device, cfg.tta, batch, workers, prefetch, cfg.quiet)
        say(f"fold {fold}: embedded its {len(emb.ids)} held-out images ({emb.features.shape[1]} features"
            + (f", TTA {tta}" if tta else "") + ")")
        parts.append((emb, fold))
        del model
    ids = [i for emb, _ in parts for i in emb.ids]
    order, notes = series_order(data, ids)
    for note in notes:
        say(note)
    table = embed.frame(ids, np.concatenate([e.features for e, _ in parts]), np.concatenate([e.logits for e, _ in parts]), order)
    table.insert(4, "fold", np.concatenate([[f] * len(e.ids) for e, f in parts]))
    embed.write(table, path, {"tta": tta})
    return table


def _patients(data: Converted, labels: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """PatientID per image (labels, else the manifest), else its series: a validation never splits a series."""
    ids = table["id"].tolist()
    patients = labels["PatientID"].reindex(ids) if "PatientID" in labels else pd.Series(np.nan, index=ids, dtype=object)
    if patients.isna().any() and data.patients is not None:
        patients = patients.fillna(data.patients.reindex(ids))
    return patients.fillna(pd.Series(table["series"].to_numpy(), index=ids)).astype(str)


def stage_data(cfg: SeriesConfig, rc: dict, data: Converted, table: pd.DataFrame) -> Stage:
    """Group the embeddings into series in slice order, attach labels, split whole patients off for validation."""
    labels, _ = resolve_labels(data, Path(rc["labels"]) if rc["labels"] else None)
    table = table.sort_values(["series", "slice"], kind="stable").reset_index(drop=True)
    emb = embed.from_frame(table)
    x = np.concatenate([emb.features if cfg.features else emb.features[:, :0], emb.logits], axis=1)
    y = labels.loc[emb.ids, list(LABELS)].to_numpy(dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, table["series"].to_numpy()[1:] != table["series"].to_numpy()[:-1]])
    groups = np.split(np.arange(len(table)), starts[1:])
    folds = patient_folds(_patients(data, labels, table).set_axis(emb.ids), cfg.val_frac, cfg.seed,
                          labels[list(LABELS)].reindex(emb.ids)) if cfg.val_frac > 0 else pd.Series("train", index=emb.ids)
    valid = np.array([folds.iloc[g[0]] == "valid" for g in groups])
    return Stage(table, groups, [torch.from_numpy(x[g]).half() for g in groups], [torch.from_numpy(y[g]) for g in groups], valid)


def _epoch(model: torch.nn.Module, stage: Stage, train_idx: np.ndarray, cfg: SeriesConfig, epoch: int, optimizer,
           scheduler, device: torch.device) -> float:
    """One pass over the training series in a seeded order; the mean weighted loss over its steps."""
    from ichprep.series.model import padded

    seed_everything(epoch_seed(cfg.seed, epoch, 0))
    model.train()
    weights = torch.tensor(LABEL_WEIGHTS, device=device)
    order = train_idx[torch.randperm(len(train_idx)).numpy()]
    losses = []
    for k in range(0, len(order), cfg.batch_size):
        chosen = order[k : k + cfg.batch_size]
        x, lengths = padded([stage.inputs[i].float() for i in chosen])
        y, _ = padded([stage.targets[i] for i in chosen])
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        out = model(x.to(device), lengths)
        loss = weighted_bce(out[mask.to(device)], y.to(device)[mask.to(device)], weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def hparams(cfg: SeriesConfig, width: int) -> dict:
    """The sequence model's shape from the options and the CNNs' feature width."""
    return {"features": width if cfg.features else 0, "hidden": cfg.hidden, "layers": cfg.layers, "cell": cfg.cell,
            "conv": cfg.conv, "dropout": cfg.dropout}


def _plain(cfg: SeriesConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}


def baselines(stage: Stage, rows: np.ndarray) -> dict[str, float]:
    """Weighted log loss of the CNNs' out-of-fold probabilities on ``rows`` of series, raw and smoothed along each series."""
    probs = 1 / (1 + np.exp(-stage.table[embed.LOGIT_COLUMNS].to_numpy(np.float64)))
    groups = [stage.groups[i] for i in rows]
    picked = np.concatenate(groups)
    y = np.concatenate([stage.targets[i].numpy() for i in rows]).astype(np.float64)
    return {"cnn": weighted_log_loss(y, probs[picked]), "smoothed": weighted_log_loss(y, smoothed(probs, groups)[picked])}


def train_series(cfg: SeriesConfig, say: Callable[[str], None] = print) -> dict:
    """Train per ``cfg``, writing SRUN/oof_embeddings.parquet, metrics.csv, curves.png, last.pt, model.pt; returns the scores."""
    from ichprep.models.device import pick_device
    from ichprep.models.saved import load_record
    from ichprep.plots.training import plot_curves
    from ichprep.train.loop import metrics_row, one_cycle

    device = pick_device(cfg.device)
    if cfg.resume and not (cfg.out / layout.LAST).exists():
        raise IchprepError(f"--resume: no {cfg.out / layout.LAST} to continue from")
    rc = run_config(cfg.run)
    cfg.out.mkdir(parents=True, exist_ok=True)
    data = open_converted(rc["data"])
    stage = stage_data(cfg, rc, data, oof_embeddings(cfg, rc, data, device, say))
    width = len([c for c in stage.table.columns if c.startswith("f") and c[1:].isdigit()])
    shape = hparams(cfg, width)
    seed_everything(cfg.seed)
    model = build(shape).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)
    train_idx, val_idx = np.flatnonzero(~stage.valid), np.flatnonzero(stage.valid)
    steps = math.ceil(len(train_idx) / cfg.batch_size)
    ckpt = {"epoch": -1, "history": [], "best": math.inf}
    if cfg.resume:
        last = cfg.out / layout.LAST
        ckpt = load_plain(last, f"--resume: {last} is not a train-series checkpoint", SERIES_CHECKPOINT)
        changed = [k for k in RESUME_KEYS if ckpt["config"].get(k) != _plain(cfg)[k]]
        if changed:
            raise IchprepError(f"--resume: {last} was made with other settings ({', '.join(changed)}); use the same options")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    start, history, best = int(ckpt["epoch"]) + 1, list(ckpt["history"]), float(ckpt["best"])
    scheduler = one_cycle(optimizer, cfg.lr, steps, cfg.epochs, start)
    say(f"{len(stage.groups)} series ({len(train_idx)} train / {len(val_idx)} validation, whole patients), "
        f"bidirectional {cfg.cell.upper()} x {cfg.layers}, hidden {cfg.hidden}" + (f", 1-D conv {cfg.conv}" if cfg.conv else "")
        + f", inputs {shape['features']} features + 6 logits; {cfg.epochs} epochs on {device}"
        + (f", resuming at epoch {start + 1}" if start else ""))
    y_val = np.concatenate([stage.targets[i].numpy() for i in val_idx]).astype(np.float64) if len(val_idx) else None
    for epoch in range(start, cfg.epochs):
        if cfg.stop_after is not None and epoch - start >= cfg.stop_after:
            break
        lr = max(g["lr"] for g in optimizer.param_groups)
        loss = _epoch(model, stage, train_idx, cfg, epoch, optimizer, scheduler, device)
        p_val = np.concatenate(series_probs(model, [stage.inputs[i] for i in val_idx], device)) if len(val_idx) else None
        row = metrics_row(epoch, None, lr, loss, y_val, p_val)
        history.append(row)
        score = row.get("val_wll", loss)
        if score < best:
            best = score
            save_atomic(model.state_dict(), cfg.out / layout.SERIES_WEIGHTS)
        pd.DataFrame(history).to_csv(cfg.out / layout.METRICS, index=False)
        plot_curves(pd.DataFrame(history), cfg.out / layout.CURVES)
        save_atomic({"format": SERIES_CHECKPOINT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "best": best, "history": history, "config": _plain(cfg)}, cfg.out / layout.LAST)
        say(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                     if k in ("epoch", "train_loss", "val_wll")))
    if len(history) < cfg.epochs:
        say(f"stopped after epoch {len(history)} of {cfg.epochs}: continue with --resume")
        return {}
    model.load_state_dict(torch.load(cfg.out / layout.SERIES_WEIGHTS, map_location=device, weights_only=True))
    scores = {"series": best}
    if len(val_idx):
        scores.update(baselines(stage, val_idx))
    scores = {f"val_{k}_wll": v for k, v in scores.items()}
    cnns = [load_record(fold_dir(cfg.run, f) / layout.MODEL) for f in range(int(rc["folds"]))]
    save_atomic(series_record(cnns, model.state_dict(), shape, list(cfg.tta), scores), cfg.out / layout.MODEL)
    atomic.write_bytes(cfg.out / layout.SERIES_SCORES, strict_json.dumps(scores, indent=2).encode())
    if len(val_idx):
        say(f"validation weighted log loss: fold CNNs {scores['val_cnn_wll']:.4f}, smoothed along the series "
            f"{scores['val_smoothed_wll']:.4f}, series model {scores['val_series_wll']:.4f}")
    return scores

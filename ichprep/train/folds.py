"""`ichprep train --folds K`: K patient-grouped folds, their out-of-fold predictions, and the fold ensemble.

Each fold trains in RUN/fold<i>/ exactly as a single run does (resumable, metrics, curves), with
fold i as its validation. When every fold has finished, the run is assembled: each labelled image
is predicted once, by the model that did not train on it (RUN/oof.csv), the folds' scores and the
out-of-fold score are written (RUN/folds.csv, RUN/oof_scores.json), and RUN/model.pt names the K
fold models, which `predict` and `evaluate` average. `--fold I` trains one fold only, so several
machines can share a run's folds; whichever finishes the last one assembles it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS, atomic, layout, strict_json
from ichprep.metrics import summary, weighted_log_loss
from ichprep.models.saved import ensemble_record
from ichprep.store import open_converted
from ichprep.train.checkpoint import load_checkpoint, save_atomic
from ichprep.train.config import TrainConfig
from ichprep.train.trainset import prepare


def fold_dir(out: Path, fold: int) -> Path:
    """Where fold ``fold`` of a run trains."""
    return out / layout.FOLD_DIR.format(fold)


def finished(cfg: TrainConfig) -> bool:
    """Whether the run of ``cfg`` has trained its last epoch (its last.pt says so)."""
    last = cfg.out / layout.LAST
    return last.exists() and (cfg.out / layout.MODEL).exists() and int(load_checkpoint(last)["epoch"]) + 1 >= len(cfg.stages())


def fold_config(cfg: TrainConfig, fold: int) -> TrainConfig:
    """The single run of fold ``fold``: its folder, its validation, resuming wherever it left off."""
    out = fold_dir(cfg.out, fold)
    return replace(cfg, out=out, fold=fold, resume=(out / layout.LAST).exists())


def train_folds(cfg: TrainConfig, say: Callable[[str], None] = print) -> dict | None:
    """Train the folds of ``cfg`` not finished yet (all, or ``cfg.fold`` alone); assemble the run once all are.

    Returns the assembled scores, or None while folds are missing.
    """
    from ichprep.train.loop import train

    assert cfg.folds is not None
    todo = range(cfg.folds) if cfg.fold is None else [cfg.fold]
    for fold in todo:
        sub = fold_config(cfg, fold)
        if finished(sub):
            say(f"fold {fold}: finished already ({sub.out})")
            continue
        say(f"fold {fold} of {cfg.folds} -> {sub.out}")
        train(sub, say)
    if os.environ.get("RANK", "0") != "0":
        return None  # under torchrun the folds train on every process; one assembles
    missing = [f for f in range(cfg.folds) if not finished(fold_config(cfg, f))]
    if missing:
        say(f"folds {', '.join(map(str, missing))} still to train (--fold I): the run is assembled when all {cfg.folds} are")
        return None
    return assemble(cfg, say)


def assemble(cfg: TrainConfig, say: Callable[[str], None] = print) -> dict:
    """RUN/oof.csv, folds.csv, oof_scores.json and the fold ensemble's model.pt, from K finished folds."""
    from ichprep.predict import predict

    assert cfg.folds is not None
    data = open_converted(cfg.data)
    parts, rows = [], []
    for fold in range(cfg.folds):
        ts = prepare(data, cfg.labels, None, cfg.seed, cfg.max_images, cfg.folds, fold)
        pred = predict(fold_dir(cfg.out, fold) / layout.MODEL, cfg.data, workers=cfg.workers, device=cfg.device,
                       quiet=cfg.quiet, ids=ts.val_ids)
        y = ts.labels.loc[pred.ids, list(LABELS)].to_numpy(dtype=np.float64)
        s = summary(y, pred.probs)
        rows.append({"fold": fold, "images": len(pred.ids), "val_wll": s["weighted_log_loss"],
                     **{f"val_auc_{k}": v for k, v in s["auc"].items()}})
        say(f"fold {fold}: {len(pred.ids)} images, weighted log loss {s['weighted_log_loss']:.4f}")
        parts.append((pred, y, fold))
    oof = pd.concat([pd.DataFrame({"image": p.ids, "fold": f, **dict(zip(LABELS, p.probs.T))}) for p, _, f in parts])
    oof = oof[["image", "fold", *LABELS]].sort_values("image", kind="stable")
    y = np.concatenate([y for _, y, _ in parts])
    p = np.concatenate([pr.probs for pr, _, _ in parts])
    scores = {"oof_weighted_log_loss": weighted_log_loss(y, p), "oof": summary(y, p), "folds": rows}
    with atomic.replacing(cfg.out / layout.OOF) as tmp:
        oof.to_csv(tmp, index=False)
    with atomic.replacing(cfg.out / layout.FOLD_SCORES) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    atomic.write_bytes(cfg.out / layout.OOF_SCORES, strict_json.dumps(scores, indent=2).encode())
    save_atomic(ensemble_record([f"{layout.FOLD_DIR.format(f)}/{layout.MODEL}" for f in range(cfg.folds)]), cfg.out / layout.MODEL)
    say(f"out-of-fold weighted log loss {scores['oof_weighted_log_loss']:.4f} over {len(oof)} images "
        f"({cfg.folds} folds); fold ensemble: {cfg.out / layout.MODEL}")
    return scores

"""`ichprep train --folds K`: K patient-grouped folds, their out-of-fold predictions, and the fold ensemble.

Each fold trains in RUN/fold<i>/ exactly as a single run does (resumable, metrics, curves), with
fold i as its validation: every labelled image of its patients. When every fold the run trains
has finished (all K, or ``--train-folds``: the 2nd place of 2019 trained 3 of 5), the run is
assembled: each image the trained folds held out is predicted once, by the model that did not
train on it, corrected to the true positive rates (RUN/oof.csv), the folds' scores and the
out-of-fold score are written (RUN/folds.csv, RUN/oof_scores.json), and RUN/model.pt names the
fold models, which `predict` and `evaluate` average. `--fold I` trains one fold only, so several
machines can share a run's folds; whichever finishes the last one assembles it. A run is one set
of options: a fold trained with others, finished or not, is refused as ``--resume`` refuses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ichprep import LABELS, atomic, layout, strict_json
from ichprep.data.workers import loader_workers, usable_cores
from ichprep.errors import IchprepError
from ichprep.metrics import prior_correct, summary, weighted_log_loss
from ichprep.models.apply import predict_ids
from ichprep.models.device import pick_device
from ichprep.models.saved import FoldEnsemble, load_cnn, rates, save
from ichprep.store import open_converted
from ichprep.train.checkpoint import load_checkpoint
from ichprep.train.config import RESUME_KEYS, TrainConfig
from ichprep.train.engine import plain
from ichprep.train.trainset import prepare


def fold_dir(out: Path, fold: int) -> Path:
    """Where fold ``fold`` of a run trains."""
    return out / layout.FOLD_DIR.format(fold)


def finished(cfg: TrainConfig) -> bool:
    """Whether the run of ``cfg`` has trained its last epoch (its last.pt says so)."""
    last = cfg.out / layout.LAST
    return last.exists() and (cfg.out / layout.MODEL).exists() and load_checkpoint(last).epoch + 1 >= len(cfg.stages())


def fold_config(cfg: TrainConfig, fold: int) -> TrainConfig:
    """The single run of fold ``fold``: its folder, its validation, resuming wherever it left off."""
    out = fold_dir(cfg.out, fold)
    return replace(cfg, out=out, fold=fold, resume=(out / layout.LAST).exists())


def check_same_run(cfg: TrainConfig) -> None:
    """Refuse to add folds to RUN when a fold already there was trained with other options."""
    assert cfg.folds is not None
    for fold in range(cfg.folds):
        last = fold_dir(cfg.out, fold) / layout.LAST
        if not last.exists():
            continue
        wanted = plain(asdict(fold_config(cfg, fold)))
        changed = [k for k in RESUME_KEYS if load_checkpoint(last).config.get(k) != wanted.get(k)]
        if changed:
            raise IchprepError(f"--out {cfg.out}: fold {fold} there was trained with other settings ({', '.join(changed)}); "
                               "use the same options, or another --out")


def train_folds(cfg: TrainConfig, say: Callable[[str], None] = print) -> dict | None:
    """Train the folds of ``cfg`` not finished yet (its folds, or ``cfg.fold`` alone); assemble the run once all are.

    Returns the assembled scores, or None while folds are missing. A RUN of other options is refused first
    (``check_same_run``; the command line checks it earlier still, before the starting weights are fetched).
    """
    from ichprep.train.cnn import train

    check_same_run(cfg)
    trained = cfg.folds_trained()
    for fold in trained if cfg.fold is None else [cfg.fold]:
        sub = fold_config(cfg, fold)
        if finished(sub):
            say(f"fold {fold}: finished already ({sub.out})")
            continue
        say(f"fold {fold} of {cfg.folds} -> {sub.out}")
        train(sub, say)
        if cfg.stop_after is not None and not finished(sub):
            return None
    if os.environ.get("RANK", "0") != "0":
        return None  # under torchrun the folds train on every process; one assembles
    missing = [f for f in trained if not finished(fold_config(cfg, f))]
    if missing:
        say(f"folds {', '.join(map(str, missing))} still to train (--fold I): the run is assembled when all {len(trained)} are")
        return None
    return assemble(cfg, say)


def _held_out(cfg: TrainConfig, fold: int, data, device) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ids fold ``fold`` held out, their labels, and its model's probabilities corrected to the true rates."""
    ts = prepare(data, cfg.labels, None, cfg.seed, cfg.max_images, cfg.folds, fold, cfg.neg_ratio)
    record = load_cnn(fold_dir(cfg.out, fold) / layout.MODEL)
    workers, prefetch = loader_workers(cfg.workers, device, 1, usable_cores())
    probs = predict_ids(record, data, ts.val_ids, device, workers=workers, prefetch=prefetch, quiet=cfg.quiet)
    y = ts.labels.loc[ts.val_ids, list(LABELS)].to_numpy(dtype=np.float64)
    learned, true = rates(record)
    return ts.val_ids, y, prior_correct(probs, true, learned)


def assemble(cfg: TrainConfig, say: Callable[[str], None] = print) -> dict:
    """RUN/oof.csv, folds.csv, oof_scores.json and the fold ensemble's model.pt, from the finished folds."""
    data, device = open_converted(cfg.data), pick_device(cfg.device)
    frames, rows, ys, ps = [], [], [], []
    for fold in cfg.folds_trained():
        ids, y, p = _held_out(cfg, fold, data, device)
        s = summary(y, p)
        rows.append({"fold": fold, "images": len(ids), "val_wll": s["weighted_log_loss"],
                     **{f"val_auc_{k}": v for k, v in s["auc"].items()}})
        say(f"fold {fold}: {len(ids)} images, weighted log loss {s['weighted_log_loss']:.4f}")
        frames.append(pd.DataFrame({"image": ids, "fold": fold, **dict(zip(LABELS, p.T))}))
        ys.append(y)
        ps.append(p)
    oof = pd.concat(frames)[["image", "fold", *LABELS]].sort_values("image", kind="stable")
    y, p = np.concatenate(ys), np.concatenate(ps)
    scores = {"oof_weighted_log_loss": weighted_log_loss(y, p), "oof": summary(y, p), "folds": rows}
    with atomic.replacing(cfg.out / layout.OOF) as tmp:
        oof.to_csv(tmp, index=False)
    with atomic.replacing(cfg.out / layout.FOLD_SCORES) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    atomic.write_bytes(cfg.out / layout.OOF_SCORES, strict_json.dumps(scores, indent=2).encode())
    save(FoldEnsemble([f"{layout.FOLD_DIR.format(f)}/{layout.MODEL}" for f in cfg.folds_trained()]), cfg.out / layout.MODEL)
    say(f"out-of-fold weighted log loss {scores['oof_weighted_log_loss']:.4f} over {len(oof)} images "
        f"({len(rows)} folds, at the true positive rates); fold ensemble: {cfg.out / layout.MODEL}")
    return scores


def fit(cfg: TrainConfig, say: Callable[[str], None] = print) -> dict | None:
    """What ``cfg`` asks for: its folds (the assembled scores, None while folds are missing), or one run ({} when stopped)."""
    if cfg.folds is not None:
        return train_folds(cfg, say)
    from ichprep.train.cnn import train

    history = train(cfg, say)
    return {"history": history}

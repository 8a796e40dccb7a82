"""The command line's values of `train`, `lr-find` and `train-series` turned into their typed options, every one checked.

Each mistake is refused in one line before any work and before torch is imported (this module
imports none), so a typo costs a second: a missing path, an unknown choice, a malformed list, a
fold past the folds, a TTA view a model never drew. For `train` the starting weights are resolved
last (``models.pretrained.resolve``): a download, when the cache has none yet, is the first work
the command does, and a refusal still leaves nothing behind.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from ichprep import layout
from ichprep.errors import IchprepError
from ichprep.models.inputs import NORMS, STACKS, views
from ichprep.paths import existing, output_folder
from ichprep.train.config import TrainConfig
from ichprep.train.schedule import OPTIMIZERS, Schedule

RENAMED: dict[str, str] = {"zoom": "scale", "compile_model": "compile"}
"""Command-line names whose TrainConfig field is named otherwise (``--scale`` is the recipes' scale)."""
PARSED: tuple[str, ...] = ("sizes", "stage_epochs", "train_folds", "flips", "neg_ratio", "no_augment")


def integers(text: str | None, option: str, lowest: int = 1) -> tuple[int, ...]:
    """A comma-separated list of integers of at least ``lowest``, such as 64,128,256; empty for none."""
    if not text:
        return ()
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise IchprepError(f"{option} {text!r}: expected comma-separated integers such as 64,128,256") from None
    if any(v < lowest for v in values):
        raise IchprepError(f"{option} {text!r}: every value must be {'positive' if lowest == 1 else f'at least {lowest}'}")
    return values


def names(text: str | None, option: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated names, each one of ``choices``."""
    chosen = tuple(v.strip() for v in (text or "").split(",") if v.strip())
    unknown = [v for v in chosen if v not in choices]
    if unknown:
        raise IchprepError(f"{option} {text!r}: unknown {unknown[0]!r}; choose from {', '.join(choices)}")
    return chosen


def negatives(text: str | None) -> float | None:
    """--neg-ratio: negatives per positive drawn each epoch (a number above 0), ``all``, or nothing (the table as given)."""
    if text is None or text == "":
        return None
    if str(text) == "all":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise IchprepError(f"--neg-ratio {text!r}: expected a number above 0 (negatives per positive) or all")
    return value


def choice(value: str, option: str, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``, else the one-line refusal naming them."""
    if value not in choices:
        named = " or ".join(choices) if len(choices) == 2 else ", ".join(choices)
        raise IchprepError(f"{option} {value!r}: choose {named}")
    return value


def _paths(o: dict[str, Any]) -> None:
    """DATA, --out and the files named must be there, --out a folder that can be made, and --resume have a run to go on."""
    if o.get("data") is None:
        raise IchprepError("missing argument DATA (convert's output)")
    if o.get("out") is None:
        raise IchprepError("missing option --out RUN")
    existing(o["data"], "DATA", "folder")
    output_folder(o["out"], "--out")
    for option in ("labels", "weights"):
        if o.get(option) is not None:
            existing(o[option], f"--{option}", "file")
    out = Path(o["out"])
    folds = out.glob(f"{layout.FOLD_DIR.format('*')}/{layout.LAST}")
    if o.get("resume") and not (out / layout.LAST).exists() and next(folds, None) is None:
        raise IchprepError(f"--resume: no {out / layout.LAST} to continue from")


def _folds(o: dict[str, Any]) -> tuple[int, ...]:
    """--folds, --fold and --train-folds checked together; the folds the run trains (empty: all)."""
    folds, fold = o.get("folds"), o.get("fold")
    trained = integers(o.get("train_folds"), "--train-folds", lowest=0)
    if fold is not None and (folds is None or fold >= folds):
        raise IchprepError(f"--fold {fold} needs --folds K with K > {fold}")
    if trained and (folds is None or max(trained) >= folds or len(set(trained)) != len(trained)):
        raise IchprepError(f"--train-folds {o['train_folds']}: distinct folds of --folds K, each below K")
    if trained and fold is not None and fold not in trained:
        raise IchprepError(f"--fold {fold} is not one of --train-folds {o['train_folds']}")
    return trained


def _choices(o: dict[str, Any]) -> None:
    """Every named choice and combination of the options, refused in one line when wrong."""
    choice(o.get("stack", "windows"), "--stack", STACKS)
    if o.get("stack") == "2.5d" and o.get("neighbours"):
        raise IchprepError("--stack 2.5d takes one slice on each side by itself; drop --neighbours")
    choice(o.get("norm", "auto"), "--norm", NORMS)
    choice(o.get("optimizer", "adamw"), "--optimizer", OPTIMIZERS)
    Schedule.parse(o.get("schedule", "one-cycle"))
    if o.get("stage_epochs") and not o.get("sizes"):
        raise IchprepError("--stage-epochs needs --sizes")
    if not 0 <= o.get("affine_p", 1.0) <= 1:
        raise IchprepError(f"--affine-p {o['affine_p']}: a probability, from 0 to 1")


def train_config(o: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of `train` (or `lr-find`) from the command line's values ``o``, once every one has been checked
    and the starting weights have been made local."""
    _paths(o)
    _choices(o)
    trained = _folds(o)
    sizes = integers(o.get("sizes"), "--sizes")
    stage_epochs = integers(o.get("stage_epochs"), "--stage-epochs", lowest=0)
    flips, ratio = views(o.get("flips", "hflip,vflip"), "--flips"), negatives(o.get("neg_ratio"))
    fields = {RENAMED.get(k, k): v for k, v in o.items() if k not in PARSED}
    cfg = TrainConfig(**fields, sizes=sizes, stage_epochs=stage_epochs, train_folds=trained, flips=flips, neg_ratio=ratio,
                      augment=not o.get("no_augment", False))
    from ichprep.models.backbones import check_arch
    from ichprep.models.pretrained import resolve
    from ichprep.train.folds import check_same_run

    check_arch(o["arch"])
    if cfg.folds is not None:
        check_same_run(cfg)
    return replace(cfg, start=resolve(o["arch"], o.get("weights"), o.get("pretrained", True)))


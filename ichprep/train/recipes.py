"""Published 2019 configurations by name, value by value with where each is written, for `train` and `train-series`.

A recipe sets, for each stage, every value its source published, each with the file (and lines)
or page it is written in, and "ichprep's choice" where the source is silent or ichprep cannot
follow it; ``differs`` says plainly what ichprep does not reproduce. Options given on the command
line win over the recipe. ``--scale tiny`` swaps in a tiny network from random weights and short
runs, so the whole two-stage pipeline of a recipe runs on phantoms in a minute or two on a CPU.
The conversion a recipe expects (windows, size) is printed as advice: it is decided by `convert`.
Values are as the command line takes them; nothing here imports torch or the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ichprep.errors import IchprepError

CHOICE = "ichprep's choice"
DEFAULT = "ichprep default"
GIVEN = "given on the command line"
TINY = "--scale tiny"
STAGES: tuple[str, ...] = ("train", "series")
SCALES: tuple[str, ...] = ("full", "tiny")


@dataclass(frozen=True)
class Value:
    """A recipe's value of one option and where it is written."""

    value: Any
    source: str


@dataclass(frozen=True)
class Recipe:
    """A published configuration: what it is, where, the conversion it expects, each stage's values, what differs."""

    about: str
    repository: str
    convert: Value
    train: dict[str, Value]
    series: dict[str, Value]
    predict: dict[str, Value]
    differs: tuple[str, ...] = ()


NB = "scripts/resnext101v12/"
"""Where the 2nd place's final scripts were (commit 4e7c014 of darraghdog/rsna; removed from later commits)."""
NOBRAINER = Recipe(
    about="2nd place, RSNA 2019 (team NoBrainer): ResNeXt101 32x8d WSL fine-tuned with Adam at 2e-5 (constant, every layer "
          "from the start) on 480 px images with hflip, transpose and shift-scale-rotate; its embeddings and their deltas to "
          "the previous and next slice into a 2-layer bidirectional LSTM of 2048 units, averaged over the LSTM's 12 epochs",
    repository="https://github.com/darraghdog/rsna (commit 4e7c014 for scripts/resnext101v12/)",
    convert=Value("ichprep convert DICOMS OUT --size 480 --windows 40/80,80/200,40/380",
                  "scripts/prepare_meta_dicom.py:65-79 (windows); run_1final_train480.sh:4 (480 px)"),
    train={
        "arch": Value("resnext101_32x8d.fb_wsl_ig1b_ft_in1k",
                      f"README; {NB}trainorig.py:275-276 `model.fc = torch.nn.Linear(2048, n_classes)`"),
        "pretrained": Value(True, f"{NB}trainorig.py:275 (the WSL Instagram weights)"),
        "stack": Value("windows", "scripts/prepare_meta_dicom.py:65-79 (three windows as the channels)"),
        "norm": Value("data", f"{NB}trainorig.py:241-242 (the data's own mean and std)"),
        "folds": Value(5, "scripts/prepare_folds.py:35-38 `(folddf['index'].values)%5`, by patient"),
        "train_folds": Value("0,1,2", f"{NB}run_1final_train480.sh (folds 0 1 2)"),
        "epochs": Value(5, f"{NB}run_1final_train480.sh:10 `--epochs 5`"),
        "batch_size": Value(64, f"{NB}run_1final_train480.sh:10 `--batchsize 64` (on 4 GPUs; -b 8 --accumulate 8 on one 16 GB GPU)"),
        "optimizer": Value("adam", f"{NB}trainorig.py:286-291 `optim.Adam(plist, lr=lr)`"),
        "lr": Value(2e-5, f"{NB}run_1final_train480.sh:10 `--lr 0.00002`"),
        "wd": Value(0.0, f"{NB}trainorig.py:286-291 (Adam without weight decay)"),
        "schedule": Value("constant", f"{NB}trainorig.py:286-291 (no scheduler)"),
        "freeze_epochs": Value(0, f"{NB}trainorig.py:286-291 (every layer trains from the start)"),
        "lr_mult": Value(1.0, f"{NB}trainorig.py:286-291 (one parameter group, one rate)"),
        "flips": Value("hflip,transpose", f"{NB}trainorig.py:246-249 `HorizontalFlip(p=0.5)`, `Transpose(p=0.5)`"),
        "rotate": Value(20.0, f"{NB}trainorig.py:246-249 `ShiftScaleRotate(shift_limit=0.05, scale_limit=0.05, rotate_limit=20, p=0.3)`"),
        "zoom": Value(0.05, f"{NB}trainorig.py:246-249"),
        "shift": Value(0.05, f"{NB}trainorig.py:246-249"),
        "affine_p": Value(0.3, f"{NB}trainorig.py:246-249"),
        "snapshots": Value(True, f"{NB}run_2final_emb.sh (embeddings of the checkpoints of epochs 0-4)"),
    },
    series={
        "tta": Value("hflip,transpose", f"{NB}run_2final_emb.sh:8-19; trainlstmdeltasum.py:262-279 (original, hflip, transpose averaged)"),
        "cnn_epochs": Value("1,2,3,4,5", f"{NB}run_3final_lstmdeltasum.sh:27 `for GEPOCH in 0 1 2 3 4` (0-based)"),
        "cell": Value("lstm", f"{NB}trainlstmdeltasum.py:339-368 `nn.LSTM(..., bidirectional=True)`"),
        "layers": Value(2, f"{NB}trainlstmdeltasum.py:339-368"),
        "hidden": Value(2048, f"{NB}run_3final_lstmdeltasum.sh:33-34 `--lstm_units 2048`"),
        "features": Value(True, f"{NB}trainlstmdeltasum.py:262-279 (the 2048 pooled features)"),
        "deltas": Value(True, f"{NB}trainlstmdeltasum.py:136-141 `np.concatenate((patemb, patdeltalag, patdeltalead), -1)`"),
        "conv": Value(0, f"{NB}trainlstmdeltasum.py:339-368 (no convolution)"),
        "dropout": Value(0.0, f"{NB}trainlstmdeltasum.py:339-368 (SpatialDropout defined, never applied)"),
        "optimizer": Value("adam", f"{NB}trainlstmdeltasum.py:373-381"),
        "lr": Value(1e-5, f"{NB}run_3final_lstmdeltasum.sh:33-34 `--lr 0.00001`"),
        "wd": Value(0.0, f"{NB}trainlstmdeltasum.py:45 (`--decay` 0.0)"),
        "schedule": Value("step:0.95", f"{NB}trainlstmdeltasum.py:384 `StepLR(optimizer, 1, gamma=lrgamma)`; --lrgamma 0.95"),
        "epochs": Value(12, f"{NB}run_3final_lstmdeltasum.sh:33-34 `--epochs 12`"),
        "batch_size": Value(4, f"{NB}run_3final_lstmdeltasum.sh:33-34 `--batchsize 4`"),
        "bags": Value(12, f"{NB}run_3final_lstmdeltasum.sh:33-34 `--nbags 12`; trainlstmdeltasum.py:432"),
    },
    predict={"tta": Value("hflip,transpose", f"{NB}run_3final_lstmdeltasum.sh:33-34 `--ttahflip T --ttatranspose T`")},
    differs=(
        "the LSTM's output: the source sums lstm1 + lstm2 + ReLU(linear) of each + the embedding before its head; ichprep's "
        "sequence model adds a learned correction to the CNN's logits",
        "one sequence model per CNN epoch over every fold's out-of-fold embeddings; the source trained one per fold and epoch "
        "on that fold's own training images (and the stage-1 test labels)",
        "slices ordered along the slice normal; the source sorted by ImagePositionPatient x, then y, then z",
        "normalisation: ichprep's data constants (0.6 / 0.25), not the source's per-channel values",
        "autocrop: ichprep's head crop at conversion; the source's first autocrop call failed and fell back to threshold 0",
    ),
)

ST = "2DNet/src/"
SQ = "SequenceModel/"
SEUTAO = Recipe(
    about="1st place, RSNA 2019 (SeuTao): DenseNet121 on 2.5D input (three adjacent slices) at 256 px, Adam at 5e-4 with "
          "cosine warm restarts; then a GRU with dilated 1-D convolutions over each series, with the slice spacing, "
          "sequence augmentation (reversed, every other slice, windows of 24) and reverse-order TTA",
    repository="https://github.com/SeuTao/RSNA2019_Intracranial-Hemorrhage-Detection (commit 376afb4)",
    convert=Value("ichprep convert DICOMS OUT --size 256", f"{ST}train.py:255 `-img_size 256`; README (the 2.5D input is "
                  "made by train --stack 2.5d)"),
    train={
        "arch": Value("densenet121", f"{ST}train.py:254 `default='DenseNet121_change_avg'`"),
        "pretrained": Value(True, f"{ST}net/models.py:69-80 (ImageNet DenseNet121)"),
        "stack": Value("2.5d", f"{ST}dataset/dataset.py:57-76 `np.concatenate([image_up, image, image_down], 2)`"),
        "norm": Value("pretrained", f"{ST}dataset/dataset.py:15 `Normalize(mean=(0.456, ...), std=(0.224, ...))`"),
        "folds": Value(5, f"{ST}train.py:80-93 `fold_5_by_study`"),
        "epochs": Value(10, f"{ST}train.py:120 `trMaxEpoch = 80` epochs of 4 x the studies' count of slices "
                            "(dataset.py:93-94), about 10 passes over the 675,000 images"),
        "batch_size": Value(256, "README `-tbs 256` (DenseNet121)"),
        "optimizer": Value("adam", f"{ST}train.py:115 `torch.optim.Adam(..., lr=0.0005, ..., weight_decay=0.00002)`"),
        "lr": Value(5e-4, f"{ST}train.py:115"),
        "wd": Value(2e-5, f"{ST}train.py:115"),
        "schedule": Value("cosine:5:0.02", f"{ST}train.py:116 `WarmRestart(optimizer, T_max=5, T_mult=1, eta_min=1e-5)`"),
        "freeze_epochs": Value(0, f"{ST}train.py:115 (every layer from the start)"),
        "lr_mult": Value(1.0, f"{ST}train.py:115 (one parameter group)"),
        "flips": Value("hflip", f"{ST}dataset/dataset.py:280 `randomHorizontalFlip(image)` (vertical flip defined, not called)"),
        "rotate": Value(30.0, f"{ST}dataset/dataset.py:282-286 `rotate_limit=(-30, 30)`"),
        "zoom": Value(0.1, f"{ST}dataset/dataset.py:282-286 `scale_limit=(-0.1, 0.1)`"),
        "shift": Value(0.1, f"{ST}dataset/dataset.py:282-286 `shift_limit=(-0.1, 0.1)`"),
        "affine_p": Value(0.5, f"{ST}dataset/dataset.py:236-243 (u=0.5)"),
    },
    series={
        "tta": Value("hflip", f"{ST}predict.py:235-244 (features averaged over 10 random views with hflip p 0.5)"),
        "cell": Value("gru", f"{SQ}seq_model.py:57-59 `nn.GRU(..., bidirectional=True)`"),
        "layers": Value(2, f"{SQ}main.py:326 `lstm_layers = 2`"),
        "hidden": Value(96, f"{SQ}main.py:328 `hidden = 96`"),
        "features": Value(True, f"{SQ}check_feature.py:38-49 (the CNNs' pooled features)"),
        "conv": Value(3, f"{SQ}seq_model.py:40-54 (kernel 3 after a first kernel 5)"),
        "dilations": Value("1,2,4,2", f"{SQ}seq_model.py:40-54 (dilations 2, 4, 2 after the first convolution)"),
        "spacing": Value(True, f"{SQ}seq_dataset.py:66-70 `Position2[i + 1] - Position2[i]`"),
        "dropout": Value(0.5, f"{SQ}main.py:329 `drop_out = 0.5`"),
        "seq_aug": Value("reverse,skip", f"{SQ}seq_dataset.py:60-64 (every other slice), 102-105 (reversed)"),
        "crop": Value(24, f"{SQ}main.py:327 `seq_len = 24`; seq_dataset.py:82-100"),
        "reverse": Value(True, f"{SQ}main.py:304-305 `final = (final + final_flip)/2.0`"),
        "optimizer": Value("adam", f"{SQ}main.py:62 `optim.Adam(model.parameters(), lr=0.0003)`"),
        "lr": Value(3e-4, f"{SQ}main.py:62"),
        "wd": Value(0.0, f"{SQ}main.py:62 (no weight decay)"),
        "schedule": Value("multistep:20,30,40:0.1", f"{SQ}main.py:63 `MultiStepLR(optimizer, [20, 30, 40], gamma=0.1)`"),
        "epochs": Value(40, f"{SQ}main.py:330 `train_epoch = 40`"),
        "batch_size": Value(128, f"{SQ}main.py:50 `batch_size = 128`"),
        "bags": Value(1, f"{SQ}main.py:109-114 (the best validation epoch kept)"),
        "val_frac": Value(0.2, f"{SQ}main.py:38 `KFold(n_splits=5, shuffle=True, random_state=48)` (one fold of five)"),
    },
    predict={"tta": Value("hflip", f"{ST}predict.py:235-244 (10 random views with hflip p 0.5)")},
    differs=(
        "windows: the source's PNGs hold each DICOM's own window, min-max scaled; ichprep's 2.5D stacks the brain window",
        "random erasing (p 0.5), random crops of 0.6-0.99 and the swap of the neighbouring slices are not reproduced",
        "sampling: ichprep's epochs pass over every training image; the source drew one slice per study, weighted to mid-series",
        "folds by patient; the source's were by study",
        "the sequence model: ichprep's one GRU over features, spacing and logits with residual dilated convolutions; the "
        "source's two parts (1x1 convolutions of many CNNs' features, and convolutions over their probabilities) are summed",
        "TTA: hflip alone; the source averaged 10 random views (hflip, crop, slice swap)",
    ),
)

FH = "notebooks/jhoward/04-from-prototyping-to-submission-fastai.ipynb (ltirrell/rsna-intracranial-hemorrhage-detection @57b130c)"
FASTAI = Recipe(
    about="the fastai notebook of the competition (Jeremy Howard, 'From prototyping to submission'): resnet18, progressive "
          "resizing 96-160-256, freeze then unfreeze, Adam with weight decay 0.01",
    repository="Jeremy Howard's Kaggle notebook; copies in https://github.com/ltirrell/rsna-intracranial-hemorrhage-detection",
    convert=Value("ichprep convert DICOMS OUT --windows fastai", "the notebook's later version (@a1772b3), cell 48 "
                  "`to_3chan(brain, subdural, bins)`"),
    train={
        "arch": Value("resnet18", f"{FH}, cells 23-24 `cnn_learner(dbch, resnet18, ...)`"),
        "pretrained": Value(True, f"{FH}, cell 23 (cnn_learner's pretrained default)"),
        "norm": Value("data", f"{FH}, cell 14 `Normalize(tensor([0.6]), tensor([0.25]))`"),
        "sizes": Value("96,160,256", f"{FH}, cells 32-34 `do_fit(128, 96, 1, 1e-2)`, 160, 256"),
        "stage_epochs": Value("1,1,1", f"{FH}, cells 32-34 (1 epoch each)"),
        "epochs": Value(3, f"{FH}, cells 32-34"),
        "freeze_epochs": Value(1, f"{FH}, cell 30 `learn.freeze(); learn.fit_one_cycle(1, slice(lr))`"),
        "lr": Value(1e-2, f"{FH}, cell 32 (1e-2 at 96 px)"),
        "lr_mult": Value(10.0, f"{FH}, cell 30 `slice(lr)` (earlier groups at lr / 10)"),
        "batch_size": Value(128, f"{FH}, cell 12 `bs,nw = 128,4`"),
        "optimizer": Value("adamw", f"{FH}, cell 22 `partial(Adam, wd=0.01, eps=1e-3)` (fastai's decoupled weight decay)"),
        "wd": Value(0.01, f"{FH}, cell 22"),
        "schedule": Value("one-cycle", f"{FH}, cell 30 `fit_one_cycle`"),
        "folds": Value(5, f"{CHOICE}: the notebook used one 80/20 split and no second stage; folds feed train-series"),
    },
    series={},
    predict={},
    differs=(
        "one one-cycle over the three sizes at lr 1e-2; the notebook ran a cycle per size at 1e-2, 3e-3 and 1e-3",
        "the loss: ichprep's weighted BCE (the metric); the notebook's BCE with pos_weight (2, 1, 1, 1, 1, 1)",
        "Adam's eps 1e-3 and fp16 training are not reproduced",
        "the second stage is ichprep's own: the notebook had none",
    ),
)

RECIPES: dict[str, Recipe] = {"nobrainer-2019": NOBRAINER, "seutao-2019": SEUTAO, "fastai-2019": FASTAI}

TINY_VALUES: dict[str, dict[str, Any]] = {
    "train": {"arch": "test_resnet", "pretrained": False, "folds": 2, "train_folds": "", "epochs": 2, "batch_size": 16,
              "workers": 0, "sizes": None, "stage_epochs": None},
    "series": {"hidden": 16, "epochs": 3, "batch_size": 4},
}
"""What ``--scale tiny`` changes: a tiny timm test network from random weights, two folds, two epochs."""


def tiny(stage: str, recipe: Recipe) -> dict[str, Any]:
    """``--scale tiny``'s values for ``stage`` of ``recipe``: short runs, and what depends on their length cut to fit."""
    values = dict(TINY_VALUES[stage])
    if "cnn_epochs" in recipe.series and stage == "series":
        values["cnn_epochs"] = "1,2"
    if recipe.series.get("bags") and stage == "series":
        values["bags"] = min(int(recipe.series["bags"].value), 3)
    if "sizes" in recipe.train and stage == "train":
        values.update(sizes="16,24,32", stage_epochs="1,1,1", epochs=3)
    return values


@dataclass
class Resolved:
    """Every option of a stage, its value and where that value came from."""

    options: dict[str, Any]
    sources: dict[str, str]
    recipe: str | None = None
    scale: str = "full"
    notes: list[str] = field(default_factory=list)


def recipe(name: str, scale: str = "full") -> Recipe:
    """The recipe ``name``, refused with the choices when unknown."""
    if name not in RECIPES:
        raise IchprepError(f"--recipe {name!r}: choose {', '.join(RECIPES)}")
    if scale not in SCALES:
        raise IchprepError(f"--scale {scale!r}: choose full or tiny")
    return RECIPES[name]


def resolve(name: str | None, stage: str, scale: str, options: dict[str, Any], given: set[str]) -> Resolved:
    """``options`` with the recipe's values wherever the user did not give the option, and each one's source."""
    sources = {k: GIVEN if k in given else DEFAULT for k in options}
    if name is None:
        return Resolved(dict(options), sources)
    chosen = recipe(name, scale)
    values = {k: v.value for k, v in getattr(chosen, stage).items()}
    sources.update({k: v.source for k, v in getattr(chosen, stage).items() if k not in given})
    if scale == "tiny":
        values.update(tiny(stage, chosen))
        sources.update({k: TINY for k in tiny(stage, chosen) if k not in given})
    out = dict(options)
    out.update({k: v for k, v in values.items() if k in options and k not in given})
    return Resolved(out, {k: sources[k] for k in options}, name, scale)


def shown(value: Any) -> str:
    """A value as the command line takes it: 2e-5, not 2e-05; a list of folds as 0,1,2; nothing as ``(not set)``."""
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{value:g}")
    if value is None or value == "":
        return "(not set)"
    return str(value)


def spelled(option: str, value: Any) -> str:
    """``--option value``: how a value reads when nothing says how the command line spells its option."""
    return f"--{option.replace('_', '-')} {shown(value)}"


def show(resolved: Resolved, stage: str, unlisted: frozenset[str] = frozenset(),
         spell: Callable[[str, Any], str] = spelled) -> str:
    """The resolved options in full (but ``unlisted``), one a line with where each value came from (``spell`` writes an
    option and its value as the command line does); a recipe's source and what differs."""
    lines = []
    if resolved.recipe is not None:
        chosen = RECIPES[resolved.recipe]
        lines += [f"recipe {resolved.recipe} ({resolved.scale} scale): {chosen.about}", f"  repository: {chosen.repository}",
                  f"  data: {chosen.convert.value}  ({chosen.convert.source})"]
    for key, value in resolved.options.items():
        if key in unlisted:
            continue
        lines.append(f"  {spell(key, value)}  ({resolved.sources[key]})")
    if resolved.recipe is not None:
        chosen = RECIPES[resolved.recipe]
        lines += [f"  then: ichprep predict ... {spelled(k, v.value)}  ({v.source})" for k, v in chosen.predict.items()
                  if stage == "series"]
        lines += [f"  not as published: {d}" for d in chosen.differs]
    return "\n".join(lines)

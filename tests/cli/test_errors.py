"""Every mistake a user can make on the command line ends the same way: one line, exit 2, nothing created.

The table holds wrong invocations of every command. For each, stderr must be exactly one line
starting ``ichprep: ``, without a traceback, and the scratch folder must hold exactly what it
held before: a refused run leaves no trace, not even a folder it would have created.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_run import ichprep
from ich_fixtures import fabricate, labelled_folder, write_train_table
from pydicom.data import get_testdata_file

ROOT = "{root}"
"""Placeholder for the scratch folder in the table's arguments."""

CASES: dict[str, list[str]] = {
    "convert: source missing": ["convert", "{root}/missing", "{root}/out"],
    "convert: OUT is a file": ["convert", "{root}/src", "{root}/a-file"],
    "convert: OUT under a file": ["convert", "{root}/src", "{root}/a-file/out"],
    "convert: empty source folder": ["convert", "{root}/empty", "{root}/out"],
    "convert: --ids match nothing": ["convert", "{root}/src", "{root}/out", "--ids", "{root}/other-ids.txt"],
    "convert: --ids file missing": ["convert", "{root}/src", "{root}/out", "--ids", "{root}/missing.txt"],
    "convert: unknown --format": ["convert", "{root}/src", "{root}/out", "--format", "gif"],
    "convert: --size too small": ["convert", "{root}/src", "{root}/out", "--size", "2"],
    "convert: --size not a number": ["convert", "{root}/src", "{root}/out", "--size", "big"],
    "convert: bad --windows": ["convert", "{root}/src", "{root}/out", "--windows", "brain,nope"],
    "convert: --quality 0": ["convert", "{root}/src", "{root}/out", "--quality", "0"],
    "convert: unknown --codec": ["convert", "{root}/src", "{root}/out", "--format", "hdf5", "--codec", "rar"],
    "convert: bad --max-disk": ["convert", "{root}/src", "{root}/out", "--max-disk", "lots"],
    "convert: --labels missing": ["convert", "{root}/src", "{root}/out", "--format", "hdf5", "--labels", "{root}/missing.csv"],
    "convert: --labels malformed": ["convert", "{root}/src", "{root}/out", "--format", "hdf5", "--labels", "{root}/broken.csv"],
    "convert: 4 windows into PNG": ["convert", "{root}/src", "{root}/out", "--windows", "brain,subdural,bone,soft"],
    "convert: --jobs 0": ["convert", "{root}/src", "{root}/out", "--jobs", "0"],
    "convert: unknown option": ["convert", "{root}/src", "{root}/out", "--colour"],
    "convert: no arguments": ["convert"],
    "unknown command": ["conver", "{root}/src", "{root}/out"],
    "fetch: SRC missing": ["fetch", "{root}/missing.zip", "stage_2_train.csv", "--out", "{root}/labels.csv"],
    "fetch: SRC a folder": ["fetch", "{root}/src", "stage_2_train.csv", "--out", "{root}/labels.csv"],
    "fetch: --out is a folder": ["fetch", "{root}/src", "stage_2_train.csv", "--out", "{root}/empty"],
    "clean-meta: source missing": ["clean-meta", "{root}/missing", "--out", "{root}/meta"],
    "clean-meta: --out is a file": ["clean-meta", "{root}/conv", "--out", "{root}/a-file"],
    "clean-meta: --labels malformed": ["clean-meta", "{root}/conv", "--labels", "{root}/broken.csv", "--out", "{root}/meta"],
    "clean-meta: --labels is a folder": ["clean-meta", "{root}/conv", "--labels", "{root}/empty", "--out", "{root}/meta"],
    "clean-meta: --val-frac 1.5": ["clean-meta", "{root}/conv", "--out", "{root}/meta", "--val-frac", "1.5"],
    "clean-meta: --out missing": ["clean-meta", "{root}/conv"],
    "sheet: --out is a folder": ["sheet", "{root}/conv", "--meta", "{root}/train.parquet", "--out", "{root}/empty"],
    "sheet: --out not a PNG": ["sheet", "{root}/conv", "--meta", "{root}/train.parquet", "--out", "{root}/sheet"],
    "sheet: --meta missing": ["sheet", "{root}/conv", "--meta", "{root}/missing.parquet", "--out", "{root}/s.png"],
    "sheet: DATA is DICOMs": ["sheet", "{root}/src", "--meta", "{root}/train.parquet", "--out", "{root}/s.png"],
    "synth: OUT is a file": ["synth", "{root}/a-file", "--n", "2"],
    "synth: --n 0": ["synth", "{root}/synth", "--n", "0"],
    "demo: OUT is a file": ["demo", "{root}/a-file"],
    "train: DATA missing": ["train", "{root}/missing", "--out", "{root}/run"],
    "train: DATA is a file": ["train", "{root}/a-file", "--out", "{root}/run"],
    "train: --out is a file": ["train", "{root}/conv", "--out", "{root}/a-file"],
    "train: unknown --arch": ["train", "{root}/conv", "--out", "{root}/run", "--arch", "resnet18x"],
    "train: unknown pretrained tag": ["train", "{root}/conv", "--out", "{root}/run", "--arch", "resnet18.no_such_tag"],
    "train: --weights of another arch": ["train", "{root}/conv", "--out", "{root}/run", "--arch", "resnet34", "--weights",
                                         "{root}/resnet18.safetensors"],
    "train: pretrained weights neither cached nor reachable": ["train", "{root}/conv", "--out", "{root}/run", "--arch",
                                                               "efficientnet_b0"],
    "train: --fold without --folds": ["train", "{root}/conv", "--out", "{root}/run", "--fold", "1"],
    "train: --fold past --folds": ["train", "{root}/conv", "--out", "{root}/run", "--folds", "3", "--fold", "3"],
    "train: --stack 2.5d with --neighbours": ["train", "{root}/conv", "--out", "{root}/run", "--stack", "2.5d", "--neighbours", "1"],
    "train: unknown --stack": ["train", "{root}/conv", "--out", "{root}/run", "--stack", "3d"],
    "train: --labels missing": ["train", "{root}/conv", "--out", "{root}/run", "--labels", "{root}/missing.csv"],
    "train: --labels malformed": ["train", "{root}/conv", "--out", "{root}/run", "--labels", "{root}/broken.csv"],
    "train: --labels of other images": ["train", "{root}/conv", "--out", "{root}/run", "--labels", "{root}/other.parquet"],
    "train: bad --sizes": ["train", "{root}/conv", "--out", "{root}/run", "--sizes", "64,big"],
    "train: --stage-epochs without --sizes": ["train", "{root}/conv", "--out", "{root}/run", "--stage-epochs", "1,1"],
    "train: --resume with nothing to resume": ["train", "{root}/conv", "--out", "{root}/run", "--resume"],
    "train: --weights not a state dict": ["train", "{root}/conv", "--out", "{root}/run", "--weights", "{root}/not-a-model.pt"],
    "lr-find: --start above --end": ["lr-find", "{root}/conv", "--out", "{root}/lr", "--start", "1", "--end", "0.1"],
    "predict: MODEL not a model": ["predict", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/sub.csv"],
    "predict: MODEL missing": ["predict", "{root}/missing.pt", "{root}/conv", "--out", "{root}/sub.csv"],
    "predict: --out is a folder": ["predict", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/empty"],
    "predict: DATA missing": ["predict", "{root}/not-a-model.pt", "{root}/missing", "--out", "{root}/sub.csv"],
    "train-series: RUN missing": ["train-series", "{root}/missing", "--out", "{root}/srun"],
    "train-series: RUN is not a --folds run": ["train-series", "{root}/conv", "--out", "{root}/srun"],
    "embed: MODEL not a model": ["embed", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/emb.parquet"],
    "embed: --out not a parquet file": ["embed", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/emb.csv"],
    "predict: unknown --tta view": ["predict", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/sub.csv", "--tta", "rot90"],
    "predict: --clip 0.7": ["predict", "{root}/not-a-model.pt", "{root}/conv", "--out", "{root}/sub.csv", "--clip", "0.7"],
    "evaluate: MODEL not a model": ["evaluate", "{root}/not-a-model.pt", "{root}/conv", "--labels", "{root}/train.parquet"],
    "evaluate: --labels malformed": ["evaluate", "{root}/not-a-model.pt", "{root}/conv", "--labels", "{root}/broken.csv"],
    "train: --folds 1": ["train", "{root}/conv", "--out", "{root}/run", "--folds", "1"],
    "train: --train-folds past --folds": ["train", "{root}/conv", "--out", "{root}/run", "--folds", "3", "--train-folds", "0,3"],
    "train: --train-folds twice a fold": ["train", "{root}/conv", "--out", "{root}/run", "--folds", "3", "--train-folds", "1,1"],
    "train: --train-folds without --folds": ["train", "{root}/conv", "--out", "{root}/run", "--train-folds", "0"],
    "train: --fold outside --train-folds": ["train", "{root}/conv", "--out", "{root}/run", "--folds", "3", "--train-folds", "0,1",
                                            "--fold", "2"],
    "train: --weights missing": ["train", "{root}/conv", "--out", "{root}/run", "--weights", "{root}/missing.pt"],
    "train: unknown --recipe": ["train", "{root}/conv", "--out", "{root}/run", "--recipe", "third-place"],
    "train: unknown --scale": ["train", "{root}/conv", "--out", "{root}/run", "--recipe", "seutao-2019", "--scale", "huge"],
    "train: unknown --recipe in a dry run": ["train", "--recipe", "nope", "--dry-run"],
    "train: no DATA": ["train", "--out", "{root}/run"],
    "train: no --out": ["train", "{root}/conv"],
    "train: --neg-ratio 0": ["train", "{root}/conv", "--out", "{root}/run", "--neg-ratio", "0"],
    "train: --neg-ratio not a number": ["train", "{root}/conv", "--out", "{root}/run", "--neg-ratio", "half"],
    "train: --accumulate 0": ["train", "{root}/conv", "--out", "{root}/run", "--accumulate", "0"],
    "train: unknown --optimizer": ["train", "{root}/conv", "--out", "{root}/run", "--optimizer", "sgd"],
    "train: bad --schedule": ["train", "{root}/conv", "--out", "{root}/run", "--schedule", "step"],
    "train: unknown --flips": ["train", "{root}/conv", "--out", "{root}/run", "--flips", "hflip,rot90"],
    "train: --affine-p 2": ["train", "{root}/conv", "--out", "{root}/run", "--affine-p", "2"],
    "train: --folds into a run of other options": ["train", "{root}/conv", "--out", "{root}/folds", "--folds", "2", "--lr", "0.1"],
    "train-series: RUN not finished": ["train-series", "{root}/unfinished", "--out", "{root}/srun"],
    "train-series: --tta the folds never drew": ["train-series", "{root}/folds", "--out", "{root}/srun", "--tta", "transpose"],
    "train-series: --cnn-epochs not kept": ["train-series", "{root}/folds", "--out", "{root}/srun", "--cnn-epochs", "1"],
    "train-series: --resume with nothing to resume": ["train-series", "{root}/folds", "--out", "{root}/srun", "--resume"],
    "train-series: unknown --cell": ["train-series", "{root}/folds", "--out", "{root}/srun", "--cell", "rnn"],
    "train-series: even --conv": ["train-series", "{root}/folds", "--out", "{root}/srun", "--conv", "4"],
    "train-series: bad --dilations": ["train-series", "{root}/folds", "--out", "{root}/srun", "--conv", "3", "--dilations", "1,0"],
    "train-series: unknown --seq-aug": ["train-series", "{root}/folds", "--out", "{root}/srun", "--seq-aug", "shuffle"],
    "train-series: --deltas of the logits alone": ["train-series", "{root}/folds", "--out", "{root}/srun", "--deltas",
                                                   "--logits-only"],
    "train-series: --bags 0": ["train-series", "{root}/folds", "--out", "{root}/srun", "--bags", "0"],
    "train-series: unknown --recipe": ["train-series", "{root}/folds", "--out", "{root}/srun", "--recipe", "nope"],
    "train-series: --out is a file": ["train-series", "{root}/folds", "--out", "{root}/a-file"],
    "embed: a two-stage MODEL": ["embed", "{root}/two-stage.pt", "{root}/conv", "--out", "{root}/emb.parquet"],
    "embed: DATA is DICOMs": ["embed", "{root}/folds/model.pt", "{root}/src", "--out", "{root}/emb.parquet"],
    "embed: --tta the model never drew": ["embed", "{root}/folds/model.pt", "{root}/conv", "--out", "{root}/emb.parquet", "--tta",
                                          "hflip"],
    "predict: --tta the model never drew": ["predict", "{root}/folds/model.pt", "{root}/conv", "--out", "{root}/sub.csv", "--tta",
                                            "vflip"],
    "predict: an ensemble missing a fold": ["predict", "{root}/unfinished/model.pt", "{root}/conv", "--out", "{root}/sub.csv"],
    "predict: --batch-size 0": ["predict", "{root}/folds/model.pt", "{root}/conv", "--out", "{root}/sub.csv", "-b", "0"],
    "evaluate: --labels missing": ["evaluate", "{root}/folds/model.pt", "{root}/conv", "--labels", "{root}/missing.csv"],
    "evaluate: --tta the model never drew": ["evaluate", "{root}/folds/model.pt", "{root}/conv", "--labels", "{root}/train.parquet",
                                             "--tta", "transpose"],
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs for every case: DICOMs, a converted folder with labels, and files that are wrong for their role."""
    root = tmp_path_factory.mktemp("mistakes")
    (root / "src").mkdir()
    (root / "src" / "ID_0000ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    (root / "empty").mkdir()
    (root / "a-file").write_text("not a folder\n")
    (root / "other-ids.txt").write_text("ID_notthere\n")
    (root / "broken.csv").write_text("ID,Label\nID_000000000_epidural,2\n")
    (root / "not-a-model.pt").write_bytes(b"\x80\x04not a pickle at all")
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet18").state_dict(), root / "resnet18.safetensors")
    labelled_folder(root, 12)
    (root / "img").rename(root / "conv")
    folds_run(root)
    other, _, other_labels, other_table = fabricate(4, seed=1)
    write_train_table(root / "other.parquet", [f"ID_other{i}" for i in range(4)], other_labels, other_table)
    return root


def folds_run(root: Path) -> None:
    """A finished 2-fold run trained without flips (ROOT/folds), one whose second fold is missing (ROOT/unfinished, its
    model.pt naming it), and a two-stage model of its folds (ROOT/two-stage.pt, the sequence model untrained)."""
    import shutil

    from ichprep.models.saved import SeriesNet, SeriesPart, TwoStage, load_cnn, save
    from ichprep.models.series_net import SeriesModel, SeriesShape

    done = ichprep("train", root / "conv", "--out", root / "folds", "--folds", "2", "--arch", "test_resnet", "--no-pretrained",
                   "--epochs", "1", "-b", "4", "--workers", "0", "--no-augment", "-q")
    assert done.exit_code == 0, done.output
    shutil.copytree(root / "folds", root / "unfinished")
    shutil.rmtree(root / "unfinished" / "fold1")
    cnns = [load_cnn(root / "folds" / f"fold{f}" / "model.pt") for f in range(2)]
    shape = SeriesShape(0, hidden=4)
    series = SeriesNet(shape.plain(), [SeriesModel(shape).state_dict()])
    save(TwoStage([SeriesPart(cnns, series)], [], False, [0.1] * 6, [0.1] * 6, {}), root / "two-stage.pt")


def snapshot(root: Path) -> set[tuple[str, int]]:
    """Every path under ``root`` with its size (folders as -1): what a refused run must leave unchanged."""
    return {(str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_invocation_is_one_line_exit_2_and_creates_nothing(scratch: Path, case: str) -> None:
    before = snapshot(scratch)
    result = ichprep(*[arg.replace(ROOT, str(scratch)) for arg in CASES[case]])

    assert result.exit_code == 2, f"{case}: exit {result.exit_code}\n{result.output}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ichprep: error: "), f"{case}: {result.stderr!r}"
    assert "Traceback" not in result.output
    assert snapshot(scratch) == before, f"{case} left {snapshot(scratch) ^ before}"


def test_the_table_covers_every_command() -> None:
    from ichprep.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert commands <= {args[0] for args in CASES.values() if args}
    assert len(CASES) >= 20

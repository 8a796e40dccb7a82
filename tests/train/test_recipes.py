"""Recipes as published: every value an option of its command with where it is written, printed in full by --dry-run."""

import pytest
import typer
from cli_run import ichprep

from ichprep.cli import app
from ichprep.models.inputs import views
from ichprep.train.recipes import CHOICE, RECIPES
from ichprep.train.schedule import Schedule

COMMANDS = {"train": "train", "series": "train-series"}


def options_of(command: str) -> set[str]:
    return {p.name for p in typer.main.get_command(app).commands[command].params}


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_value_is_an_option_of_its_command_and_says_where_it_is_written(name):
    recipe = RECIPES[name]
    for stage, command in COMMANDS.items():
        values = getattr(recipe, stage)
        assert set(values) <= options_of(command), set(values) - options_of(command)
        for option, value in values.items():
            assert value.source and (value.source.startswith(CHOICE) or any(c in value.source for c in "/`:")), (option, value)
            if option == "schedule":
                Schedule.parse(value.value)
            if option in ("flips", "tta"):
                views(value.value)
    assert recipe.convert.value.startswith("ichprep convert DICOMS OUT") and recipe.differs


@pytest.mark.parametrize("name, command, published", [
    ("nobrainer-2019", "train", ["--arch resnext101_32x8d.fb_wsl_ig1b_ft_in1k", "--optimizer adam", "--lr 2e-5",
                                 "--schedule constant", "--freeze-epochs 0", "--flips hflip,transpose", "--rotate 20",
                                 "--affine-p 0.3", "--folds 5", "--train-folds 0,1,2", "--epochs 5", "--snapshots"]),
    ("nobrainer-2019", "train-series", ["--cell lstm", "--hidden 2048", "--deltas", "--lr 1e-5", "--schedule step:0.95",
                                        "--bags 12", "--epochs 12", "--batch-size 4", "--cnn-epochs 1,2,3,4,5",
                                        "--tta hflip,transpose"]),
    ("seutao-2019", "train", ["--arch densenet121", "--stack 2.5d", "--optimizer adam", "--lr 0.0005", "--wd 2e-5",
                              "--schedule cosine:5:0.02", "--flips hflip", "--rotate 30", "--batch-size 256"]),
    ("seutao-2019", "train-series", ["--cell gru", "--hidden 96", "--conv 3", "--dilations 1,2,4,2", "--spacing",
                                     "--seq-aug reverse,skip", "--crop 24", "--reverse-tta", "--schedule multistep:20,30,40:0.1",
                                     "--epochs 40", "--dropout 0.5"]),
    ("fastai-2019", "train", ["--arch resnet18", "--sizes 96,160,256", "--stage-epochs 1,1,1", "--freeze-epochs 1",
                              "--lr 0.01", "--lr-mult 10", "--batch-size 128", "--norm data"]),
])
def test_a_dry_run_prints_the_published_values_with_their_sources_and_creates_nothing(tmp_path, monkeypatch, name, command,
                                                                                      published):
    monkeypatch.chdir(tmp_path)
    done = ichprep(command, "--recipe", name, "--dry-run")
    assert done.exit_code == 0 and done.stderr == "", done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"recipe {name} (full scale): ") and "https://github.com/" in lines[1]
    for value in published:
        line = next((ln for ln in lines if ln.startswith(f"  {value}  (")), None)
        assert line is not None, (value, done.stdout)
        assert not line.endswith("(ichprep default)")
    assert "  --seed 42  (ichprep default)" in lines and any(ln.startswith("  not as published: ") for ln in lines)
    given = ichprep(command, tmp_path / "x", "--out", tmp_path / "y", "--recipe", name, "--dry-run", "--seed", "7")
    assert given.exit_code == 0 and "  --seed 7  (given on the command line)" in given.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_without_a_recipe_lists_every_option_as_ichprep_s_default():
    done = ichprep("train", "--dry-run", "--lr", "0.01")
    assert done.exit_code == 0
    assert "  --lr 0.01  (given on the command line)" in done.stdout and "  --optimizer adamw  (ichprep default)" in done.stdout

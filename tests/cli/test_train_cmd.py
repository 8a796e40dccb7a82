"""`ichprep train` and `ichprep lr-find` from the command line: what each prints, on stdout and stderr."""

from __future__ import annotations

import pytest
from cli_run import ichprep
from ich_fixtures import labelled_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-train")
    labelled_folder(root, 24, seed=2, size=16)
    return root


def test_lr_find_prints_the_sweep_on_stderr_and_the_rate_alone_on_stdout(blobs, tmp_path):
    done = ichprep("lr-find", blobs / "img", "--out", tmp_path / "lr", "--arch", "test_resnet", "--no-pretrained", "-b", "4",
                   "--steps", "6", "--workers", "0")
    assert done.exit_code == 0, done.output
    rate = float(done.stdout)
    assert 1e-7 <= rate <= 10 and f"suggested lr: {rate:.2e}" in done.stderr
    assert (tmp_path / "lr" / "lr_find.csv").is_file() and (tmp_path / "lr" / "lr_find.png").is_file()


def test_train_says_where_the_model_went_and_its_lines_go_to_stderr(blobs, tmp_path):
    done = ichprep("train", blobs / "img", "--out", tmp_path / "run", "--arch", "test_resnet", "--no-pretrained", "--epochs",
                   "1", "-b", "4", "--workers", "0", "-q")
    assert done.exit_code == 0, done.output
    assert done.stdout == f"model: {tmp_path / 'run' / 'model.pt'}\n"
    assert "epoch=1 train_loss=" in done.stderr and "size=" not in done.stderr

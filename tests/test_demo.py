"""`ichprep demo`, the README's main job: phantoms -> images -> cleaned tables -> sheet -> model ->
scores on new phantoms -> submission, a re-run that does nothing again, and every command it prints
runs as pasted.

The end-to-end test runs the demo as `make demo` does (its script, from the repository root, in a
shell whose PATH does not hold the environment), twice, in the background from the start of the
suite (``demo_job``), and then pastes each printed command into such a shell.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from demo_job import FRESH_PATH, REPO, SCRIPT, fresh_shell

from ichprep import LABELS
from ichprep.cli import demo_cmd


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as every parser but Python's does."""
    def refuse(word: str):
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def demo(request):
    """The default demo's folder and its first run, once both runs of the background job have ended."""
    job = request.config._ichprep_demo
    first, _ = job.runs()
    return job.out, first


def printed_commands(stdout: str) -> list[str]:
    """The lines the demo prints under ``next:``."""
    lines = stdout.splitlines()
    return [line.strip() for line in lines[lines.index("next:") + 1:]]


def test_demo_runs_the_whole_job_and_says_where_each_output_went(demo):
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    raw = sorted(p.stem for p in (out / "raw" / "stage_1_train_images").glob("*.dcm"))
    test = sorted(p.stem for p in (out / "test" / "stage_1_train_images").glob("*.dcm"))
    assert len(raw) == 1000 and len(test) == 250 and not set(raw) & set(test)
    manifest = pd.read_parquet(out / "images" / "manifest.parquet")
    assert (manifest["status"] == "ok").sum() == 1000
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == raw
    assert cv2.imread(str(out / "images" / f"{raw[0]}.png")).shape == (64, 64, 3)
    train = pd.read_parquet(out / "meta" / "train.parquet")
    assert set(train["SOPInstanceUID"]) <= set(raw) and set(train["fold"]) == {"train", "valid"}
    assert cv2.imread(str(out / "sheet.png")) is not None
    for name in ("model.pt", "oof.csv", "fold0/metrics.csv", "fold1/curves.png"):
        assert (out / "run" / name).is_file()
    for name in ("model.pt", "metrics.csv", "scores.json"):
        assert (out / "srun" / name).is_file()
    submission = pd.read_csv(out / "submission.csv")
    assert list(submission.columns) == ["ID", "Label"] and len(submission) == 6 * len(test)
    assert set(submission["ID"].str.rsplit("_", n=1).str[0]) == set(test)
    assert submission["ID"].str.fullmatch(r"ID_[0-9a-f]{9}_(epidural|intraparenchymal|intraventricular|subarachnoid|subdural|any)").all()
    assert submission["Label"].between(1e-4, 1 - 1e-4).all() and submission["Label"].notna().all()
    for path in ("raw", "test", "images", "meta", "sheet.png", "run", "srun", "test_scores.json", "submission.csv"):
        assert str(out / path) in done.stdout, path


def test_the_model_learns_and_is_scored_on_new_patients(demo):
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    both = strict_json((out / "test_scores.json").read_text())
    scores = both["two_stage"]
    assert scores["auc"]["any"] >= 0.9 and both["fold_ensemble"]["auc"]["any"] >= 0.9, both
    assert re.search(rf"^any +{scores['log_loss']['any']:.4f} +{scores['auc']['any']:.3f} ", done.stdout, re.M), done.stdout
    raw, calibrated = both["fold_ensemble_as_learned"], both["fold_ensemble"]
    for name, result, gain in (("fold ensemble, at the true rates", calibrated, calibrated["weighted_log_loss"] - raw["weighted_log_loss"]),
                               ("both stages", scores, scores["weighted_log_loss"] - calibrated["weighted_log_loss"])):
        shown = [re.escape(f"{v:{f}}") for v, f in ((result["weighted_log_loss"], ".4f"), (result["mean_any"], ".1%"), (gain, "+.4f"))]
        assert re.search(rf"^ +{name} +{shown[0]} +{shown[1]} +[a-z ]+ {shown[2]}$", done.stdout, re.M), (name, done.stdout)
    test_patients = {
        pydicom.dcmread(f, stop_before_pixels=True, force=True).PatientID for f in (out / "test" / "stage_1_train_images").glob("*.dcm")
    }
    assert not test_patients & set(pd.read_parquet(out / "images" / "manifest.parquet")["PatientID"])
    history = pd.read_csv(out / "run" / "fold0" / "metrics.csv")
    # The patient split holds positives of every label, so each validation AUC is defined every epoch.
    assert history[[f"val_auc_{label}" for label in LABELS]].notna().all().all()
    assert np.isfinite(history["val_wll"]).all()


def test_trained_on_the_1_to_1_sample_both_stages_predict_the_true_rate_and_score_every_labelled_image(demo):
    """clean-meta keeps one negative per positive; the folds validate and the second stage trains on every labelled image,
    and on new patients the mean predicted any of both stages is within a quarter of the true rate."""
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    labels = pd.read_csv(out / "raw" / "stage_1_train.csv")
    manifest = pd.read_parquet(out / "images" / "manifest.parquet")
    labelled = set(labels["ID"].str.rsplit("_", n=1).str[0]) & set(manifest.loc[manifest["status"] == "ok", "id"])
    assert sorted(pd.read_csv(out / "run" / "oof.csv")["image"]) == sorted(labelled)
    assert sorted(pd.read_parquet(out / "srun" / "oof_embeddings.parquet", columns=["id"])["id"]) == sorted(labelled)
    assert len(pd.read_parquet(out / "meta" / "train.parquet")) < 0.6 * len(labelled)  # the sample is what trained
    scores = strict_json((out / "test_scores.json").read_text())
    for name in ("fold_ensemble", "two_stage"):
        assert abs(scores[name]["mean_any"] - scores[name]["true_any"]) <= 0.25 * scores[name]["true_any"], scores[name]
    as_learned = scores["fold_ensemble_as_learned"]
    assert as_learned["mean_any"] > 1.25 * as_learned["true_any"]  # what the correction corrects


def test_every_printed_command_runs_as_pasted_from_the_repository_root(demo):
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    commands = printed_commands(done.stdout)
    assert commands and all(c.split()[0] in (".venv/bin/ichprep", str(SCRIPT), "source") for c in commands), commands
    assert "command not found" not in done.stdout
    for command in commands:
        ran = subprocess.run(["bash", "-c", command], cwd=REPO, env=fresh_shell(), capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, (command, ran.stderr[-2000:])
        if " evaluate " in command:
            assert ran.stdout.startswith("weighted log loss"), ran.stdout
    assert len(pd.read_csv(out / "submission-tta.csv")) == len(pd.read_csv(out / "submission.csv"))


def test_a_second_run_converts_nothing_trains_nothing_and_gives_the_same_result(demo, request):
    """The job's second run into the same folder: conversion, the folds and the second stage resume to nothing to do,
    and the scores are the first run's (test_scores.json is the second run's: the tests above read it too)."""
    out, done = demo
    _, again = request.config._ichprep_demo.runs()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(nothing to do: all 1000 were already converted;" in again.stdout
    assert again.stderr.count("finished already") == 3 and "epoch=" not in again.stderr, again.stderr
    first = re.search(r"^test scores:.*?^submission:", done.stdout, re.M | re.S).group(0)
    assert re.search(r"^test scores:.*?^submission:", again.stdout, re.M | re.S).group(0) == first


def test_printed_commands_use_the_word_an_active_environment_finds(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "demo"])
    monkeypatch.setenv("PATH", f"{SCRIPT.parent}:{FRESH_PATH}")
    assert demo_cmd.invocation() == "ichprep"
    monkeypatch.setenv("PATH", FRESH_PATH)
    expected = os.path.relpath(SCRIPT) if not os.path.relpath(SCRIPT).startswith("..") else str(SCRIPT)
    assert demo_cmd.invocation() == expected


def test_printed_commands_fall_back_to_python_m_ichprep(monkeypatch, tmp_path):
    python = sys.executable
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert demo_cmd.invocation() == f"{tmp_path / 'python3'} -m ichprep"
    ran = subprocess.run([python, "-m", "ichprep", "--version"], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("ichprep "), ran.stderr

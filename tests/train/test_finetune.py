"""fastai's fine_tune on timm's layer groups: the head alone first, then every layer at its own rate, resumable across the switch."""

from dataclasses import replace

import pytest
import torch

from ichprep.models.pretrained import resolve
from ichprep.train import TrainConfig, train
from ichprep.train.network import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(root, out) -> TrainConfig:
    """Two epochs from the suite's cached resnet18 weights: one frozen (the default from trained weights), one not."""
    return TrainConfig(data=root / "img", out=out, epochs=2, batch_size=8, workers=0, quiet=True, lr=1e-2)


def parameters(path) -> dict[str, torch.Tensor]:
    """The trained parameters (not the batch-norm statistics, which move in any training mode) of a checkpoint."""
    ckpt = torch.load(path, weights_only=True)["model"]
    return {k: v for k, v in ckpt.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_the_frozen_epoch_trains_the_head_alone_then_every_layer_learns_at_its_rate(blobs, tmp_path):
    cfg = config(blobs, tmp_path / "run")
    start = resolve(cfg.arch, None, True)
    initial = build_model(cfg, 3, torch.device("cpu"), start).state_dict()
    lines: list[str] = []
    train(replace(cfg, stop_after=1), say=lines.append)
    assert any(line.startswith("fine-tuning: 1 epoch(s) of the head alone") for line in lines), lines
    frozen = parameters(cfg.out / "last.pt")
    moved = {k for k, v in frozen.items() if not torch.equal(v, initial[k])}
    assert moved == {"fc.weight", "fc.bias"}
    train(replace(cfg, resume=True), say=lambda _m: None)
    unfrozen = parameters(cfg.out / "last.pt")
    assert not torch.equal(unfrozen["conv1.weight"], initial["conv1.weight"])
    groups = torch.load(cfg.out / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    peaks = sorted(g["max_lr"] for g in groups)
    assert peaks[0] == pytest.approx(cfg.lr / 2 / cfg.lr_mult) and peaks[-1] == pytest.approx(cfg.lr / 2)
    assert [g["max_lr"] for g in groups if g["head"]] == [pytest.approx(cfg.lr / 2)] * sum(g["head"] for g in groups)


def test_a_run_resumed_at_the_switch_ends_as_an_uninterrupted_one(blobs, tmp_path):
    cfg = replace(config(blobs, tmp_path / "whole"), epochs=3)
    train(cfg, say=lambda _m: None)
    split = replace(cfg, out=tmp_path / "split")
    train(replace(split, stop_after=1), say=lambda _m: None)
    train(replace(split, resume=True, stop_after=1), say=lambda _m: None)
    train(replace(split, resume=True), say=lambda _m: None)
    whole, resumed = torch.load(cfg.out / "last.pt", weights_only=True), torch.load(split.out / "last.pt", weights_only=True)
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert [g["lr"] for g in whole["optimizer"]["param_groups"]] == [g["lr"] for g in resumed["optimizer"]["param_groups"]]


def test_from_random_weights_nothing_is_frozen_and_one_rate_serves_all(blobs, tmp_path):
    cfg = replace(config(blobs, tmp_path / "run"), pretrained=False, epochs=1)
    lines: list[str] = []
    train(cfg, say=lines.append)
    assert not any(line.startswith("fine-tuning") for line in lines)
    groups = torch.load(cfg.out / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    assert {g["max_lr"] for g in groups} == {cfg.lr}

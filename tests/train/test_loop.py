"""The CNN trainer: loss = metric, stages, augmentation, exact resume, DDP on CPU, lr-find (the full chain is the demo's test)."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ich_fixtures import (
    fabricate,
    write_folder,
    write_train_table,
)

from ichprep import LABELS
from ichprep.errors import IchprepError
from ichprep.metrics import LABEL_WEIGHTS, weighted_log_loss
from ichprep.models.backbones import create
from ichprep.models.saved import load_cnn
from ichprep.train import TrainConfig, train
from ichprep.train.augment import AugmentOptions, augment
from ichprep.train.distributed import Dist
from ichprep.train.loss import weighted_bce

ICHPREP = Path(sys.executable).parent / "ichprep"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(root: Path, out: Path, **changes) -> TrainConfig:
    """A two-epoch run of timm's tiny test network from random weights: the loop's mechanics, one one-cycle schedule
    (fine-tuning is tested apart)."""
    cfg = TrainConfig(data=root / "img", out=out, epochs=2, batch_size=8, workers=0, quiet=True, lr=1e-3, pretrained=False,
                      arch="test_resnet")
    return replace(cfg, **changes)


def test_loss_equals_the_competition_metric():
    torch.manual_seed(0)
    logits = torch.randn(5, 6)
    y = (torch.rand(5, 6) > 0.5).float()
    expected = weighted_log_loss(y.numpy(), torch.sigmoid(logits).double().numpy())
    assert weighted_bce(logits, y, torch.tensor(LABEL_WEIGHTS)).item() == pytest.approx(expected, rel=1e-5)


def test_stages_split_epochs_over_sizes():
    cfg = TrainConfig(data=Path("."), out=Path("."), epochs=5, sizes=(64, 128, 256))
    assert cfg.stages() == [64, 64, 128, 128, 256]
    assert replace(cfg, stage_epochs=(1, 0, 2)).stages() == [64, 256, 256]
    assert replace(cfg, sizes=()).stages() == [None] * 5
    with pytest.raises(IchprepError, match="--stage-epochs"):
        replace(cfg, stage_epochs=(1, 2)).stages()


def test_augment_is_seeded_and_identity_when_switched_off():
    x = torch.rand(4, 3, 16, 16)
    options = AugmentOptions()
    a = augment(x, torch.Generator().manual_seed(1), options)
    b = augment(x, torch.Generator().manual_seed(1), options)
    assert torch.equal(a, b) and not torch.allclose(a, x)
    still = AugmentOptions(flips=(), rotate=0, scale=0, shift=0)
    assert torch.allclose(augment(x, torch.Generator().manual_seed(1), still), x, atol=1e-5)


def test_augment_flips_reverse_the_image_exactly():
    x = torch.rand(64, 1, 8, 8)
    flips = AugmentOptions(flips=("hflip",), rotate=0, scale=0, shift=0)
    out = augment(x, torch.Generator().manual_seed(0), flips)
    flipped = torch.isclose(out, torch.flip(x, dims=[3]), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    assert (flipped | same).all() and flipped.any() and same.any()


def test_without_the_shift_scale_rotate_each_image_is_itself_or_its_exact_transposition():
    x = torch.rand(64, 2, 8, 8)
    out = augment(x, torch.Generator().manual_seed(0), AugmentOptions(flips=("transpose",), rotate=30, scale=0.2, shift=0.1, p=0))
    transposed = torch.isclose(out, x.transpose(2, 3), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    assert (transposed | same).all() and transposed.sum() > 16 and same.sum() > 16


def test_a_run_on_drawn_negatives_trains_each_epoch_on_positives_and_that_many_negatives(tmp_path):
    ids, images, labels, table = fabricate(60, seed=5, size=8)
    write_folder(tmp_path / "img", ids, images)
    write_train_table(tmp_path / "train.parquet", ids, labels, table)
    lines: list[str] = []
    cfg = TrainConfig(data=tmp_path / "img", out=tmp_path / "run", labels=tmp_path / "train.parquet", arch="test_resnet",
                      pretrained=False, epochs=1, batch_size=2, workers=0, quiet=True, val_frac=0.0, neg_ratio=0.5)
    train(cfg, say=lines.append)
    positives = int(labels[:, 0].sum())
    assert f"1 epochs of {(positives + round(0.5 * positives)) // 2} steps on cpu (fp32, 0 loader workers)" in lines
    assert any(line.startswith("training on 0.5 negative(s) per positive drawn afresh each epoch") for line in lines)


def test_training_writes_the_run_folder(blobs, tmp_path):
    lines: list[str] = []
    history = train(tiny(blobs, tmp_path / "run", arch="resnet18"), say=lines.append)
    steps = steps_per_epoch(blobs, 1, batch=8)
    assert "resnet18 from random weights, 3 channels, input mean/std 0.6 / 0.25" in lines
    assert f"2 epochs of {steps} steps on cpu (fp32, 0 loader workers)" in lines
    assert [row["epoch"] for row in history] == [1, 2]
    for name in ("last.pt", "best.pt", "model.pt", "metrics.csv", "curves.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert {"train_loss", "val_wll", "val_logloss_subdural", "val_auc_any", "val_acc_epidural"} <= set(metrics.columns)
    record = load_cnn(tmp_path / "run" / "model.pt")
    assert record.arch == "resnet18" and record.in_channels == 3 and record.labels == list(LABELS)
    assert (record.mean, record.std) == ([0.6] * 3, [0.25] * 3) and record.settings["format"] == "png"
    assert record.weights == {"arch": "resnet18", "kind": "random", "source": ""} and record.views == ["hflip", "vflip"]
    table = pd.read_parquet(blobs / "train.parquet")
    rate = table.loc[table["fold"] == "train", list(LABELS)].mean().to_numpy()
    assert np.allclose(record.train_pos_rate, rate)
    assert not list((tmp_path / "run").glob(".*tmp*"))


def test_resumed_run_ends_with_the_same_weights(blobs, tmp_path):
    cfg = tiny(blobs, tmp_path / "whole", epochs=3, sizes=(12, 16), neighbours=1)
    train(cfg, say=lambda _m: None)
    split = replace(cfg, out=tmp_path / "split")
    train(replace(split, stop_after=1), say=lambda _m: None)
    assert len(pd.read_csv(split.out / "metrics.csv")) == 1
    train(replace(split, resume=True), say=lambda _m: None)
    whole = torch.load(cfg.out / "last.pt", weights_only=False)
    resumed = torch.load(split.out / "last.pt", weights_only=False)
    assert resumed["epoch"] == whole["epoch"] == 2
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert pd.read_csv(split.out / "metrics.csv").equals(pd.read_csv(cfg.out / "metrics.csv"))


def test_resume_refuses_other_settings(blobs, tmp_path):
    cfg = tiny(blobs, tmp_path / "run", epochs=1)
    train(cfg, say=lambda _m: None)
    with pytest.raises(IchprepError, match="other settings"):
        train(replace(cfg, resume=True, lr=0.5), say=lambda _m: None)


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = torch.load(a, weights_only=True)["model"], torch.load(b, weights_only=True)["model"]
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_a_run_saved_where_three_gpus_were_visible_resumes_where_one_is(blobs, tmp_path, monkeypatch):
    """The old last.pt kept one CUDA generator state per visible GPU and restored them all."""
    cfg = tiny(blobs, tmp_path / "whole", device="cpu")
    train(cfg, say=lambda _m: None)
    split = replace(cfg, out=tmp_path / "split")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # torch >= 2.14's optimizers ask the (pretended) CUDA device whether a graph is being captured.
    monkeypatch.setattr(torch.optim.Optimizer, "_accelerator_graph_capture_health_check", lambda _self: None)
    with monkeypatch.context() as three:
        three.setattr(torch.cuda, "device_count", lambda: 3)
        three.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(16, dtype=torch.uint8)] * 3)
        train(replace(split, stop_after=1), say=lambda _m: None)

    def one_gpu(states: list) -> None:
        if len(states) > 1:
            raise IndexError("list index out of range")  # what torch raises with fewer devices

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", one_gpu)
    train(replace(split, resume=True), say=lambda _m: None)
    assert_same_weights(cfg.out / "last.pt", split.out / "last.pt")


def test_a_bf16_run_resumes_in_fp16_with_a_fresh_loss_scale(blobs, tmp_path, monkeypatch):
    """An A100 run (bf16: the scaler is off and saves {}) continued on a T4 (fp16: the scaler is on).
    fp16 convolutions are slow on a CPU, hence one step an epoch; CPU half-precision kernels are not
    deterministic, so the losses themselves are not checked."""
    import ichprep.train.step as step

    cfg = tiny(blobs, tmp_path / "run", device="cpu", max_images=16)
    monkeypatch.setattr(step, "amp_dtype", lambda _device: torch.bfloat16)
    train(replace(cfg, stop_after=1), say=lambda _m: None)
    assert torch.load(cfg.out / "last.pt", weights_only=True)["scaler"] == {}
    monkeypatch.setattr(step, "amp_dtype", lambda _device: torch.float16)
    lines: list[str] = []
    history = train(replace(cfg, resume=True), say=lines.append)
    assert [row["epoch"] for row in history] == [1, 2]
    assert any("fp16 autocast with loss scaling" in line for line in lines), lines
    assert torch.load(cfg.out / "last.pt", weights_only=True)["scaler"]["scale"] > 0  # saved by the enabled scaler


def test_every_process_augments_its_images_its_own_way(blobs, tmp_path, monkeypatch):
    """The same batch position on ranks 0 and 1 gets different transforms; each rank repeats its own."""
    import ichprep.train.cnn as loop

    first: dict[str, torch.Tensor] = {}

    def recorded(x: torch.Tensor, g: torch.Generator, options: AugmentOptions) -> torch.Tensor:
        out = augment(x, g, options)
        first.setdefault(current, out)
        return out

    monkeypatch.setattr(loop, "augment", recorded)
    for current in ("rank 0", "rank 1", "rank 1 again"):
        rank = 0 if current == "rank 0" else 1
        monkeypatch.setattr(loop, "setup", lambda _device, rank=rank: Dist(rank, 1, torch.device("cpu")))
        train(tiny(blobs, tmp_path / current, epochs=1, device="cpu"), say=lambda _m: None)
    assert torch.equal(first["rank 1"], first["rank 1 again"])
    assert not torch.isclose(first["rank 0"], first["rank 1"], atol=1e-3).flatten(1).all(1).any()


def test_the_epoch_loss_is_the_mean_of_every_step_loss(blobs, tmp_path, monkeypatch):
    """Summed on the device and read once an epoch, it equals the mean of the losses read one by one."""
    import ichprep.train.step as step

    losses: list[float] = []

    def recorded(*args) -> torch.Tensor:
        loss = weighted_bce(*args)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(step, "weighted_bce", recorded)
    history = train(tiny(blobs, tmp_path / "run", epochs=1), say=lambda _m: None)
    assert len(losses) > 1 and history[0]["train_loss"] == sum(losses) / len(losses)


def test_a_compiled_run_saves_the_networks_own_keys_and_resumes_uncompiled(blobs, tmp_path, monkeypatch):
    """torch.compile's wrapper prefixes every key with _orig_mod.; neither last.pt nor model.pt may carry it.
    The eager backend keeps the test fast; the wrapper and its keys are the same as inductor's."""

    compiled = []
    real = torch.compile

    def eager(model, **_options):
        compiled.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager)
    cfg = tiny(blobs, tmp_path / "run")
    lines: list[str] = []
    train(replace(cfg, compile=True, stop_after=1), say=lines.append)
    assert len(compiled) == 1 and any(", compiled" in line for line in lines)
    expected = set(create("test_resnet", 3).state_dict())
    assert set(load_cnn(cfg.out / "model.pt").state_dict) == expected
    assert set(torch.load(cfg.out / "last.pt", weights_only=True)["model"]) == expected
    assert [row["epoch"] for row in train(replace(cfg, resume=True), say=lambda _m: None)] == [1, 2]


def torchrun_train(blobs: Path, run: Path, *options: str) -> subprocess.CompletedProcess:
    """`ichprep train` on the blobs by two gloo processes on the CPU (batch 4 per process, no augmentation)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(ICHPREP),
           "train", str(blobs / "img"), "--out", str(run), "-b", "4", "--workers", "0", "-q", "--device", "cpu",
           "--no-augment", "--no-pretrained", "--arch", "test_resnet", *options]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def one_cycle_rates(lr: float, steps: int, epochs: int) -> tuple[list[float], float]:
    """torch's OneCycleLR stepped through an uninterrupted run: the rate at each epoch's start, and at the end."""
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps * epochs)
    starts = []
    for _ in range(epochs):
        starts.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
    return starts, optimizer.param_groups[0]["lr"]


def steps_per_epoch(blobs: Path, processes: int, batch: int = 4) -> int:
    """Batches per process per epoch over the blobs' training fold (DistributedSampler pads to equal shares)."""
    n = int((pd.read_parquet(blobs / "train.parquet")["fold"] == "train").sum())
    return -(-n // processes) // batch


def ddp_twin(blobs: Path, run: Path, **changes) -> TrainConfig:
    """The TrainConfig of `torchrun_train` with --epochs 3, for the in-process half of a resume."""
    return TrainConfig(data=blobs / "img", out=run, epochs=3, batch_size=4, workers=0, quiet=True, device="cpu",
                       augment=False, pretrained=False, arch="test_resnet", **changes)


def assert_on_the_schedule(history: list[dict], final_lr: float, steps: int) -> None:
    """Every epoch began at, and the run ended on, the rates of an uninterrupted run with `steps` per epoch."""
    starts, end = one_cycle_rates(2e-3, steps, 3)
    assert [row["lr"] for row in history][1:] == pytest.approx(starts[1:], rel=1e-12)
    assert final_lr == pytest.approx(end, rel=1e-12)


def assert_every_validation_image_counted_once(blobs: Path, run: Path) -> None:
    """The logged val_wll of epoch 1 is the metric of model.pt's predictions over the validation fold."""
    from ichprep.predict import predict

    pred = predict(run / "model.pt", blobs / "img", batch_size=16, workers=0, device="cpu", quiet=True)
    table = pd.read_parquet(blobs / "train.parquet").set_index("SOPInstanceUID")
    valid = [k for k, i in enumerate(pred.ids) if table.at[i, "fold"] == "valid"]
    y = table.loc[[pred.ids[k] for k in valid], list(LABELS)].to_numpy()
    logged = pd.read_csv(run / "metrics.csv")["val_wll"].iloc[0]
    assert logged == pytest.approx(weighted_log_loss(y, pred.probs[valid]), rel=1e-4)


def test_two_processes_validate_every_image_once_and_one_process_continues_their_schedule(blobs, tmp_path):
    run = tmp_path / "run"
    done = torchrun_train(blobs, run, "--epochs", "3", "--stop-after", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("epoch=1") == 1 and done.stdout.count("model:") == 1  # rank 0 alone reports
    assert_every_validation_image_counted_once(blobs, run)
    lines: list[str] = []
    history = train(ddp_twin(blobs, run, resume=True), say=lines.append)
    assert any("written by 2 processes and this run has 1" in line for line in lines), lines
    final = torch.load(run / "last.pt", weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert_on_the_schedule(history, final, steps_per_epoch(blobs, 1))


def test_one_process_resumed_by_two_continues_the_schedule_to_its_end(blobs, tmp_path):
    run = tmp_path / "run"
    train(ddp_twin(blobs, run, stop_after=1), say=lambda _m: None)
    done = torchrun_train(blobs, run, "--epochs", "3", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "written by 1 process and this run has 2" in done.stderr
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert [row["epoch"] for row in ckpt["history"]] == [1, 2, 3]
    assert_on_the_schedule(ckpt["history"], ckpt["optimizer"]["param_groups"][0]["lr"], steps_per_epoch(blobs, 2))


def test_lr_find_writes_the_sweep_and_suggests_a_rate_inside_it(blobs, tmp_path):
    from ichprep.train.lr_find import lr_find

    sweep, suggestion = lr_find(tiny(blobs, tmp_path / "lr"), start=1e-5, end=10, steps=30, say=lambda _m: None)
    assert (tmp_path / "lr" / "lr_find.png").exists()
    saved = pd.read_csv(tmp_path / "lr" / "lr_find.csv")
    assert list(saved.columns) == ["lr", "loss", "smoothed_loss"] and 5 <= len(saved) <= 30
    assert np.all(np.diff(saved["lr"]) > 0)
    assert saved["lr"].min() <= suggestion <= saved["lr"].max()


def test_lr_find_scales_fp16_losses_as_training_does(blobs, tmp_path, monkeypatch):
    """Without a GradScaler, fp16 gradients below 6e-8 vanish and the sweep measures a network that barely learns."""
    import ichprep.train.step as step
    from ichprep.train.lr_find import lr_find

    monkeypatch.setattr(step, "amp_dtype", lambda _device: torch.float16)
    scaled: list[bool] = []
    real_scale = torch.amp.GradScaler.scale

    def scale(scaler, loss):
        scaled.append(scaler.is_enabled())
        return real_scale(scaler, loss)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", scale)
    sweep, _ = lr_find(tiny(blobs, tmp_path / "lr", batch_size=2), start=1e-4, end=1e-2, steps=4, say=lambda _m: None)
    assert len(sweep) >= 1 and scaled == [True] * len(sweep)  # one scaled loss a step, however far the sweep went


def test_missing_labels_are_a_clear_error(tmp_path):
    ids, images, _, _ = fabricate(4, size=8)
    write_folder(tmp_path / "img", ids, images)
    with pytest.raises(IchprepError, match="no labels found"):
        train(TrainConfig(data=tmp_path / "img", out=tmp_path / "run", quiet=True), say=lambda _m: None)


def test_a_compiled_network_unwraps_to_itself():
    from ichprep.train.distributed import unwrap

    model = create("resnet18", 3)
    compiled = torch.compile(model, backend="eager")
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    assert unwrap(compiled) is model and unwrap(model) is model

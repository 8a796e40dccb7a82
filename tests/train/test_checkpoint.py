"""Checkpoint files: loaded without unpickling code, the loss scale across precisions, per-process seeds."""

import numpy as np
import pytest
import torch

from ichprep.errors import IchprepError
from ichprep.train.augment import augment
from ichprep.train.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    epoch_seed,
    load_checkpoint,
    restore_scaler,
    save_checkpoint,
)


def test_a_checkpoint_of_tensors_and_plain_values_loads(tmp_path):
    ckpt = Checkpoint(CHECKPOINT_FORMAT, {"w": torch.ones(2)}, {}, 0, 0.5, [{"epoch": 1, "size": None}], {"lr": 0.1})
    save_checkpoint(ckpt, tmp_path / "last.pt")
    assert torch.load(tmp_path / "last.pt", weights_only=True)["format"] == CHECKPOINT_FORMAT
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded.model["w"], torch.ones(2)) and loaded.history == ckpt.history and loaded.config == {"lr": 0.1}


def test_a_checkpoint_that_needs_the_unpickler_is_refused_in_one_line(tmp_path):
    """An older last.pt pickled numpy's generator state; loading it would need weights_only=False."""
    torch.save({"model": {}, "rng": {"numpy": np.random.get_state()}}, tmp_path / "old.pt")
    with pytest.raises(IchprepError, match="not a checkpoint this ichprep can continue"):
        load_checkpoint(tmp_path / "old.pt")
    torch.save({"model": {}}, tmp_path / "unmarked.pt")
    with pytest.raises(IchprepError, match=CHECKPOINT_FORMAT):
        load_checkpoint(tmp_path / "unmarked.pt")


def test_a_loss_scale_survives_every_change_of_precision():
    fp16 = torch.amp.GradScaler("cpu", init_scale=1024.0)
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    restore_scaler(disabled, fp16.state_dict())  # saved in fp16, resumed in bf16: nothing to scale
    assert not disabled.is_enabled()
    fresh = torch.amp.GradScaler("cpu", init_scale=4096.0)
    restore_scaler(fresh, disabled.state_dict())  # saved in bf16 ({}), resumed in fp16 (an A100 run on a T4)
    assert fresh.is_enabled() and fresh.get_scale() == 4096.0
    again = torch.amp.GradScaler("cpu")
    restore_scaler(again, fp16.state_dict())  # fp16 to fp16: the scale continues
    assert again.get_scale() == 1024.0


def test_processes_draw_different_augmentations_and_each_draws_the_same_again():
    x = torch.rand(4, 3, 16, 16)

    def drawn(rank: int, epoch: int = 0) -> torch.Tensor:
        return augment(x, torch.Generator().manual_seed(epoch_seed(42, epoch, rank)))

    assert torch.equal(drawn(0), drawn(0)) and torch.equal(drawn(1), drawn(1))
    for a, b in [(drawn(0), drawn(1)), (drawn(0, epoch=0), drawn(0, epoch=1))]:
        assert not torch.isclose(a, b, atol=1e-3).flatten(1).all(1).any()  # no image transformed alike

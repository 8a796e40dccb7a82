"""model.pt files: each kind saved and loaded back as its record, an ensemble's members found, others refused in one line."""

import numpy as np
import pytest
import torch

from ichprep.errors import IchprepError
from ichprep.models.saved import CnnModel, FoldEnsemble, SeriesNet, SeriesPart, TwoStage, load, load_cnn, members, rates, save
from ichprep.models.series_net import SeriesModel, SeriesShape


def cnn(fold: int = 0) -> CnnModel:
    return CnnModel(arch="test_resnet", weights={"arch": "test_resnet", "kind": "random", "source": ""},
                    state_dict={"w": torch.full((2,), float(fold))}, in_channels=3, neighbours=0, stack="windows", size=16,
                    settings={"size": 16}, mean=[0.6] * 3, std=[0.25] * 3, train_pos_rate=[0.5] * 6,
                    true_pos_rate=[0.2] * 6, views=["hflip"], fold=fold, epoch=3, trained="run")


def test_each_kind_loads_back_as_it_was_saved(tmp_path):
    save(cnn(1), tmp_path / "one.pt")
    one = load(tmp_path / "one.pt")
    assert isinstance(one, CnnModel) and torch.equal(one.state_dict["w"], torch.ones(2)) and one.identity == "run@3"
    save(FoldEnsemble(["fold0/model.pt"]), tmp_path / "ens.pt")
    assert load(tmp_path / "ens.pt") == FoldEnsemble(["fold0/model.pt"])
    shape = SeriesShape(4, hidden=8, deltas=True)
    net = SeriesNet(shape.plain(), [SeriesModel(shape).state_dict()] * 2)
    save(TwoStage([SeriesPart([cnn(0), cnn(1)], net)], ["hflip"], True, [0.2] * 6, [0.2] * 6, {"val_series_wll": 0.1}),
         tmp_path / "two.pt")
    two = load(tmp_path / "two.pt")
    assert isinstance(two, TwoStage) and [c.fold for c in two.cnns] == [0, 1] and two.reverse and two.settings == {"size": 16}
    assert two.parts[0].series.series_shape == shape and len(two.parts[0].series.networks(torch.device("cpu"))) == 2
    learned, true = rates(one)
    assert np.allclose(learned, 0.5) and np.allclose(true, 0.2)


def test_an_ensemble_stands_for_its_members_and_a_missing_one_is_named(tmp_path):
    (tmp_path / "fold0").mkdir()
    save(cnn(0), tmp_path / "fold0" / "model.pt")
    save(FoldEnsemble(["fold0/model.pt", "fold1/model.pt"]), tmp_path / "model.pt")
    with pytest.raises(IchprepError, match="averages fold1/model.pt, which is missing beside it"):
        members(tmp_path / "model.pt")
    save(FoldEnsemble(["fold0/model.pt"]), tmp_path / "model.pt")
    assert [p.name for p, _ in members(tmp_path / "model.pt")] == ["model.pt"]
    with pytest.raises(IchprepError, match="not a single CNN's model.pt"):
        load_cnn(tmp_path / "model.pt")


@pytest.mark.parametrize("content, message", [
    ({"format": "ichprep-model/2", "arch": "resnet18"}, "made by another version of ichprep (ichprep-model/2): train it again"),
    ({"format": "something/1"}, "not a model.pt this ichprep can use"),
    ({"format": CnnModel.FORMAT, "arch": "resnet18"}, "damaged ichprep-model/3 file"),
])
def test_an_older_foreign_or_damaged_file_is_refused_in_one_line(tmp_path, content, message):
    torch.save(content, tmp_path / "model.pt")
    with pytest.raises(IchprepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path / "model.pt")


def test_a_pickle_that_needs_the_unpickler_is_never_run(tmp_path):
    torch.save({"format": CnnModel.FORMAT, "thing": np.random.get_state()}, tmp_path / "model.pt")
    with pytest.raises(IchprepError, match="is not a model.pt written by `ichprep train`"):
        load(tmp_path / "model.pt")

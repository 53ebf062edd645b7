"""The resume state is written from the live tensors (no copies that double the peak memory) and reads
back identical, also when the best weights are the model's own tensors."""

from __future__ import annotations

import torch

from diffrec_cli.models.adamw import FusedAdamW
from diffrec_cli.training.resume import TrainingState, latest_state, save_state


def _state(share_best: bool) -> tuple[TrainingState, torch.nn.Linear]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3)
    optimizer = FusedAdamW(layer.parameters(), lr=1e-2)
    layer(torch.randn(4, 5)).pow(2).sum().backward()
    optimizer.step()
    live = {k: v.detach() for k, v in layer.state_dict().items()}
    best = live if share_best else {k: v.clone() + 1 for k, v in live.items()}
    rng = {"rng.cpu": torch.get_rng_state()}
    return TrainingState(3, live, best, optimizer.state_dict(), rng, {"note": "x"}), layer


def test_tensors_are_the_live_ones_not_copies():
    state, layer = _state(share_best=False)
    tensors = state.tensors()
    assert tensors["model.weight"].data_ptr() == layer.weight.data_ptr()
    exp_avg = state.optimizer["state"][0]["exp_avg"]
    assert any(t.data_ptr() == exp_avg.data_ptr() for t in tensors.values())


def test_best_weights_sharing_the_models_storage_are_written_and_read_back(tmp_path):
    state, layer = _state(share_best=True)
    tensors = state.tensors()
    assert tensors["model.weight"].data_ptr() == layer.weight.data_ptr()
    assert tensors["best.weight"].data_ptr() == layer.weight.data_ptr()  # no copy: the writer takes both
    save_state(tmp_path, state)
    back = latest_state(tmp_path)
    assert back is not None and back.epoch == 3 and back.info["note"] == "x"
    for key, value in layer.state_dict().items():
        assert torch.equal(back.model[key], value) and torch.equal(back.best_model[key], value)
    for index, moments in state.optimizer["state"].items():
        for name, value in moments.items():
            assert torch.equal(back.optimizer["state"][index][name], value)

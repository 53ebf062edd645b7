"""The best weights kept in a temporary file: identical tensors back, independent of the model, in memory
only where no file can be written."""

from __future__ import annotations

import pytest
import torch

from diffrec_cli.training import kept_weights
from diffrec_cli.training.kept_weights import KeptWeights


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    return {"w": torch.randn(5, 3, generator=gen), "half": torch.randn(4, generator=gen).bfloat16(),
            "wide": torch.randn(2, 2, generator=gen).double(), "count": torch.tensor(7),
            "mask": torch.tensor([True, False, True]), "empty": torch.zeros(0, 3),
            "strided": torch.arange(12.0).reshape(3, 4).t()}


def test_a_copy_comes_back_bit_for_bit_from_its_file_and_ignores_later_changes():
    state = _state()
    expected = {k: v.clone() for k, v in state.items()}
    kept = KeptWeights.copy_of(state)
    assert not kept.in_memory
    for value in state.values():
        if value.numel():
            value.zero_() if value.dtype != torch.bool else value.fill_(False)
    for _ in range(2):  # read twice: each read starts at the file's beginning
        back = kept.tensors()
        assert list(back) == list(expected)
        for name, value in expected.items():
            assert back[name].dtype == value.dtype and back[name].shape == value.shape
            assert torch.equal(back[name], value), name
    kept.close()
    assert kept.tensors() == {}


def test_without_a_temporary_file_the_copy_stays_in_memory(monkeypatch):
    def no_file():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kept_weights.tempfile, "TemporaryFile", no_file)
    state = _state()
    kept = KeptWeights.copy_of(state)
    assert kept.in_memory
    state["w"].zero_()
    assert not torch.equal(kept.tensors()["w"], state["w"])


def test_a_write_that_fails_half_way_falls_back_to_memory(monkeypatch):
    class FullDisk:
        closed = False

        def __init__(self):
            self.writes = 0

        def write(self, data):
            self.writes += 1
            if self.writes > 2:
                raise OSError(28, "No space left on device")
            return len(data)

        def close(self):
            FullDisk.closed = True

    monkeypatch.setattr(kept_weights.tempfile, "TemporaryFile", FullDisk)
    kept = KeptWeights.copy_of(_state())
    assert kept.in_memory and FullDisk.closed
    assert torch.equal(kept.tensors()["wide"], _state()["wide"])


def test_holding_keeps_the_tensors_themselves():
    state = _state()
    kept = KeptWeights.holding(state)
    assert kept.tensors()["w"] is state["w"]


def test_a_short_file_is_an_error_not_silent_garbage():
    kept = KeptWeights.copy_of(_state())
    kept._spill.truncate(8)
    with pytest.raises(OSError, match="came back short"):
        kept.tensors()


def test_a_fit_ends_on_the_weights_of_its_best_evaluation(tiny):
    from diffrec_cli.config import resolve_settings
    from diffrec_cli.models.build import build_model
    from diffrec_cli.plugins import load_plugins
    from diffrec_cli.training.events import Evaluated
    from diffrec_cli.training.loop import fit

    from conftest import FAST_MODEL

    registry = load_plugins(entry_points=False).registry
    torch.manual_seed(3)
    model, _ = build_model(registry, "diffrec", dict(FAST_MODEL), n_users=tiny.n_users, n_items=tiny.n_items)
    train = {"epochs": "6", "eval_every": "1", "batch_size": "16", "lr": "0.01"}
    config = resolve_settings(train, {}, dataset=tiny.name, device="cpu", precision="fp32").train
    states = {}

    def reporter(event):
        if isinstance(event, Evaluated):
            states[event.epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    result = fit(model, tiny, config, reporter)
    assert len(states) == 6
    best = states[result.best_epoch]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())
    if result.best_epoch != 6:  # then the last epoch's weights must differ from what the model ends with
        assert not all(torch.equal(states[6][k], v) for k, v in best.items())


def test_an_interrupted_write_closes_its_file_and_goes_on_raising(monkeypatch):
    opened = []

    class Interrupted:
        closed = False

        def write(self, data):
            raise KeyboardInterrupt

        def close(self):
            self.closed = True

    monkeypatch.setattr(kept_weights.tempfile, "TemporaryFile", lambda: opened.append(Interrupted()) or opened[-1])
    with pytest.raises(KeyboardInterrupt):
        KeptWeights.copy_of(_state())
    assert opened and opened[0].closed


def _fast_fit(tiny, reporter=None, epochs: int = 2, before=None):
    from diffrec_cli.config import resolve_settings
    from diffrec_cli.models.build import build_model
    from diffrec_cli.plugins import load_plugins
    from diffrec_cli.training.loop import fit

    from conftest import FAST_MODEL

    registry = load_plugins(entry_points=False).registry
    torch.manual_seed(3)
    model, _ = build_model(registry, "diffrec", dict(FAST_MODEL), n_users=tiny.n_users, n_items=tiny.n_items)
    if before is not None:
        before(model)
    train = {"epochs": str(epochs), "eval_every": "1", "batch_size": "16"}
    config = resolve_settings(train, {}, dataset=tiny.name, device="cpu", precision="fp32").train
    return model, fit(model, tiny, config, reporter or (lambda event: None))


def test_a_failing_fit_closes_the_file_of_its_best_weights(tiny, monkeypatch):
    from diffrec_cli.training.events import Evaluated

    files = []
    real = kept_weights.tempfile.TemporaryFile
    monkeypatch.setattr(kept_weights.tempfile, "TemporaryFile", lambda: files.append(real()) or files[-1])

    def reporter(event):
        if isinstance(event, Evaluated) and event.epoch == 2:
            raise RuntimeError("a listener failed")

    with pytest.raises(RuntimeError, match="a listener failed"):
        _fast_fit(tiny, reporter, epochs=3)
    assert files and all(f.closed for f in files)


def test_gradients_left_on_a_model_do_not_enter_its_next_fit(tiny):
    def leftovers(model):
        for p in model.parameters():
            p.grad = torch.full_like(p, 100.0)

    clean, _ = _fast_fit(tiny)
    dirty, _ = _fast_fit(tiny, before=leftovers)
    for (name, a), b in zip(clean.state_dict().items(), dirty.state_dict().values()):
        assert torch.equal(a, b), name

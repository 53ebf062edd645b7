"""Checkpoints: train a small DiffRec, save, load back bit-identically; the files are what they claim."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import FAST_MODEL, FAST_TRAIN, make_tiny
from diffrec_cli import __version__
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.plugins import load_plugins
from diffrec_cli.serve import load_served
from diffrec_cli.training.checkpoint import META, WEIGHTS, load_checkpoint, resolve_checkpoint
from diffrec_cli.training.job import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = DataHome(tmp_path_factory.mktemp("ckpt-home"))
    home.save(make_tiny())
    registry = load_plugins(entry_points=False).registry
    settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN}, dataset="tiny", device="cpu")
    outcome = train(settings, registry, home=home)
    return home, registry, outcome


def test_run_finished_with_a_checkpoint(trained):
    _, _, outcome = trained
    run = outcome.run.path
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert (run / "checkpoint" / WEIGHTS).is_file()
    assert (run / "checkpoint" / META).is_file()
    assert not [p for p in (run / "checkpoint").iterdir() if p.name.startswith(".")]  # no temp files left
    assert outcome.result.epochs_run == 2
    assert outcome.result.best_epoch in (1, 2)


def test_load_gives_identical_state_and_scores(trained):
    _, registry, outcome = trained
    loaded = load_checkpoint(outcome.run.path, registry)
    original = outcome.model.state_dict()
    restored = loaded.model.state_dict()
    assert set(original) == set(restored)
    assert "diffusion.loss_history" in restored  # importance-sampling history travels with the weights
    for name, tensor in original.items():
        assert torch.equal(tensor.cpu(), restored[name].cpu()), name
    assert not loaded.model.training
    data = outcome.data
    rows = np.arange(data.n_users)
    x = dense_rows(data.train, rows)
    outcome.model.eval()
    a = outcome.model.scores(torch.from_numpy(rows), x)
    b = loaded.model.scores(torch.from_numpy(rows), x)
    assert torch.equal(a, b)
    assert a.shape == (data.n_users, data.n_items)


def test_checkpoint_json_describes_the_model(trained):
    _, _, outcome = trained
    meta = json.loads((outcome.run.path / "checkpoint" / META).read_text())
    assert meta["format"] == "diffrec-checkpoint/1"
    assert meta["library_version"] == __version__
    assert meta["model"]["name"] == "diffrec"
    assert meta["model"]["plugin"] == "diffrec"
    assert meta["model"]["config"]["dims"] == [32]
    assert meta["model"]["config"]["emb_size"] == 4
    schedule = meta["model"]["components"]["schedule"]
    assert schedule["name"] == "linear-var"
    assert schedule["config"]["steps"] == 5
    data = outcome.data
    assert meta["dataset"]["name"] == "tiny"
    assert meta["dataset"]["fingerprint"] == data.fingerprint()
    assert (meta["dataset"]["n_users"], meta["dataset"]["n_items"]) == (data.n_users, data.n_items)
    assert meta["epoch"] == outcome.result.best_epoch
    assert meta["metrics"]["valid"] == pytest.approx(outcome.result.valid)
    assert meta["metrics"]["test"] == pytest.approx(outcome.result.test)
    assert meta["metrics"]["valid"]["users"] == 40
    assert meta["parameters"] == outcome.model.parameter_count()
    assert meta["train"]["epochs"] == 2 and meta["train"]["batch_size"] == 64


def test_safetensors_file_is_plain_tensors(trained):
    _, _, outcome = trained
    path = outcome.run.path / "checkpoint" / WEIGHTS
    raw = path.read_bytes()
    # safetensors layout: u64 little-endian header length, then a JSON header; no pickle anywhere
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    assert header["__metadata__"]["diffrec"] == "diffrec-checkpoint/1"
    state = outcome.model.state_dict()
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(state)
        for key in f.keys():
            assert torch.equal(f.get_tensor(key), state[key].cpu()), key


def test_resolve_checkpoint_accepts_run_folder_and_files(trained):
    _, _, outcome = trained
    folder = outcome.run.path / "checkpoint"
    for given in (outcome.run.path, folder, folder / WEIGHTS, folder / META):
        assert resolve_checkpoint(given) == folder
    with pytest.raises(DiffrecError, match="no checkpoint"):
        resolve_checkpoint(outcome.run.path / "nope")


def test_served_model_refuses_a_changed_dataset(trained, tmp_path):
    home, registry, outcome = trained
    served = load_served(str(outcome.run.path), registry, home=home)
    assert served.data.fingerprint() == outcome.data.fingerprint()
    other = DataHome(tmp_path / "other")
    other.save(make_tiny(seed=1))  # same name and shape, different interactions
    with pytest.raises(DiffrecError, match="changed"):
        load_served(str(outcome.run.path), registry, home=other)


def test_the_seed_setting_fixes_the_whole_run(trained, tmp_path):
    """Two trainings with the same seed in one process give the same weights, whatever ran in between."""
    home, registry, outcome = trained
    settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN}, dataset="tiny", device="cpu")
    torch.manual_seed(12345)  # global state a previous job might have left behind
    torch.rand(7)
    again = train(settings, registry, home=home)
    for key, value in outcome.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    assert again.result.test == outcome.result.test

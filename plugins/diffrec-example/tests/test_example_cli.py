"""The installed entry point puts the plugin's components in the registry and in `diffrec train`."""

import importlib.metadata
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import get_registry, reset_plugins
from diffrec_cli.serve import load_served
from diffrec_example.reweighting import ExpDecayReweighting
from diffrec_example.schedules import CosineSchedule


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A data home holding a 24-user dataset whose training interactions have a chronological order."""
    monkeypatch.setenv("DIFFREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DIFFREC_LOAD_PLUGINS", raising=False)
    reset_plugins()
    rng = np.random.default_rng(0)
    n_users, n_items = 24, 20
    splits = {s: ([], [], []) for s in ("train", "valid", "test")}
    for u in range(n_users):
        items = rng.choice(np.arange(10) + 10 * (u % 2), size=8, replace=False)
        for pos, item in enumerate(items):
            split = "train" if pos < 6 else ("valid" if pos == 6 else "test")
            splits[split][0].append(u)
            splits[split][1].append(item)
            splits[split][2].append(pos + 1)  # chronological position + 1, as the importers store it
    mats = {s: csr_from_pairs(np.array(us), np.array(its), (n_users, n_items), np.array(vs, dtype=np.float32))
            for s, (us, its, vs) in splits.items()}
    train_order = (mats["train"].data - 1).astype(np.int32)
    for s in ("train", "valid", "test"):
        mats[s].data[:] = 1.0
    data = InteractionData("chrono", mats["train"], mats["valid"], mats["test"],
                           np.array([f"u{i}" for i in range(n_users)]), np.array([f"i{i}" for i in range(n_items)]),
                           train_order=train_order)
    home = DataHome(tmp_path / "home")
    home.save(data)
    yield home
    reset_plugins()


def test_entry_point_is_installed():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="diffrec") if ep.name == "example"]
    assert ep.value == "diffrec_example"
    assert ep.dist.name == "diffrec-example" and ep.dist.version == "0.1.0"


def test_registry_lists_the_components(home):
    registry = get_registry()
    schedule = registry.get("noise_schedule", "cosine")
    reweighting = registry.get("reweighting", "exp-decay")
    assert (schedule.cls, schedule.plugin, schedule.version) == (CosineSchedule, "example", "0.1.0")
    assert (reweighting.cls, reweighting.plugin) == (ExpDecayReweighting, "example")
    rows = json.loads(CliRunner().invoke(app, ["plugins", "--json"]).stdout)
    assert {"name": "example", "version": "0.1.0",
            "registers": {"noise_schedule": ["cosine"], "reweighting": ["exp-decay"]}} in rows


def test_train_with_cosine_and_exp_decay(home):
    result = CliRunner().invoke(app, [
        "train", "--dataset", "chrono", "--quiet", "--no-live", "--epochs", "2",
        "--set", "schedule=cosine", "--set", "scale=0.01", "--set", "steps=5", "--set", "dims=[16]",
        "--set", "emb_size=4", "--set", "reweighting=exp-decay", "--set", "eval_every=1",
    ])
    assert result.exit_code == 0, result.output
    (run_dir,) = home.runs_dir.iterdir()
    meta = json.loads((run_dir / "checkpoint" / "checkpoint.json").read_text())
    assert meta["model"]["components"]["schedule"] == {
        "name": "cosine", "plugin": "example", "version": "0.1.0",
        "config": {"steps": 5, "offset": 0.008, "max_beta": 0.999, "scale": 0.01}}
    assert meta["reweighting"] == {"name": "exp-decay", "plugin": "example", "version": "0.1.0",
                                   "config": {"w_min": 0.1, "w_max": 1.0, "half_life": 10.0}}
    # and the checkpoint reloads through the registry
    result = CliRunner().invoke(app, ["eval", run_dir.name, "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"valid", "test"}
    served = load_served(run_dir.name, get_registry(), home=home)
    data = served.data
    lengths = np.repeat(np.diff(data.train.indptr), np.diff(data.train.indptr))
    expected = ExpDecayReweighting().weights(data.train_order, lengths)
    np.testing.assert_array_equal(served.inputs.data, expected)
    assert served.inputs.data.min() < 1.0  # the model read decayed weights, not 1s

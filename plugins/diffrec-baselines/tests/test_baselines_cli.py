"""The installed plugin's models work through the ordinary commands: train, eval, recommend, export-embeddings."""

import importlib.metadata
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from diffrec_baselines.autoencoders import MultiVAE
from diffrec_cli.cli.app import app
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import get_registry, reset_plugins
from diffrec_cli.runs import read_runs

MODELS = ["mf", "lightgcn", "cdae", "multidae", "multidae++", "multivae", "codigem", "ease", "itemknn", "toppop",
          "rp3beta", "slim", "ials"]


@pytest.fixture
def baselines_home(tmp_path, monkeypatch):
    """A data home with a 30-user, 24-item dataset of three taste blocks."""
    monkeypatch.setenv("DIFFREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DIFFREC_LOAD_PLUGINS", raising=False)
    reset_plugins()
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 24
    splits = {s: ([], []) for s in ("train", "valid", "test")}
    for u in range(n_users):
        items = rng.choice(np.arange(8) + 8 * (u % 3), size=7, replace=False)
        for pos, item in enumerate(items):
            split = "train" if pos < 5 else ("valid" if pos == 5 else "test")
            splits[split][0].append(u)
            splits[split][1].append(item)
    mats = {s: csr_from_pairs(np.array(us), np.array(its), (n_users, n_items)) for s, (us, its) in splits.items()}
    data = InteractionData("blocks", mats["train"], mats["valid"], mats["test"],
                           np.array([f"u{i}" for i in range(n_users)]), np.array([f"i{i}" for i in range(n_items)]))
    home = DataHome(tmp_path / "home")
    home.save(data)
    yield home
    reset_plugins()


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def _train(model, *sets):
    args = ["train", "--model", model, "--dataset", "blocks", "--quiet", "--no-live", "--epochs", "2",
            "--set", "eval_every=1", "--set", "batch_size=64"]
    for s in sets:
        args += ["--set", s]
    return _cli(*args)


def test_entry_point_registers_every_baseline(baselines_home):
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="diffrec") if ep.name == "baselines"]
    assert ep.value == "diffrec_baselines" and ep.dist.name == "diffrec-baselines"
    registry = get_registry()
    for name in MODELS:
        assert registry.get("model", name).plugin == "baselines"
    assert registry.get("model", "multivae").cls is MultiVAE


@pytest.mark.parametrize("model", ["multivae", "ease", "lightgcn"])
def test_train_eval_recommend(baselines_home, model):
    result = _train(model)
    assert result.exit_code == 0, result.output
    (run,) = [r for r in read_runs(baselines_home.runs_dir) if r.model == model]
    assert run.status == "finished" and run.problems == []
    final = run.final
    if model == "ease":
        assert final["epochs_run"] == 1 and final["best_epoch"] == 1  # closed form: one fit, one evaluation
    # a model that learned the blocks beats chance (Recall@10 of a random ranking here is about 10/19);
    # MultiVAE learns slowest in two epochs
    assert final["test"]["recall@10"] > {"multivae": 0.6, "ease": 0.9, "lightgcn": 0.8}[model]
    meta = json.loads((run.checkpoint / "checkpoint.json").read_text())
    assert meta["model"]["plugin"] == "baselines"
    result = _cli("eval", run.id, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["test"]["recall@20"] == pytest.approx(final["test"]["recall@20"], abs=1e-6)
    result = _cli("recommend", run.id, "--user", "u0", "-k", "3")
    assert result.exit_code == 0, result.output
    assert "u0" in result.output


@pytest.mark.parametrize("model,size", [("mf", 8), ("lightgcn", 6)])
def test_export_embeddings(baselines_home, tmp_path, model, size):
    assert _train(model, f"emb_size={size}").exit_code == 0
    (run,) = read_runs(baselines_home.runs_dir)
    out = tmp_path / "item_emb.npy"
    result = _cli("export-embeddings", run.id, "--out", out)
    assert result.exit_code == 0, result.output
    emb = np.load(out, allow_pickle=False)
    assert emb.shape == (24, size) and emb.dtype == np.float32 and np.isfinite(emb).all()
    from diffrec_cli.serve import load_served

    served = load_served(run.id, get_registry(), home=baselines_home)
    np.testing.assert_array_equal(emb, served.model.item_embeddings().numpy())


def test_export_embeddings_refuses_a_model_without_them(baselines_home, tmp_path):
    assert _train("multidae").exit_code == 0
    (run,) = read_runs(baselines_home.runs_dir)
    result = _cli("export-embeddings", run.id, "--out", tmp_path / "x.npy")
    assert result.exit_code == 2
    assert "has no item embeddings" in result.output
    result = _cli("export-embeddings", run.id, "--out", tmp_path / "x.txt")
    assert result.exit_code == 2


def test_unknown_setting_names_the_known_ones(baselines_home):
    result = _train("ease", "lambda=3")
    assert result.exit_code == 2
    assert "unknown setting 'lambda'" in result.output and "reg" in result.output


@pytest.mark.parametrize("model,settings", [("toppop", {}), ("rp3beta", {"k": 50}),
                                            ("slim", {"k": 50, "iterations": 30}),
                                            ("ials", {"factors": 8, "iterations": 3})])
def test_new_baselines_train_on_demo_and_reload_in_a_fresh_process(tmp_path, model, settings):
    from diffrec_cli.testing import train_and_reload

    check = train_and_reload(model, tmp_path / "home", settings=settings)
    assert (check.run_dir / "checkpoint" / "model.safetensors").is_file()
    for split in ("valid", "test"):
        for metric in ("recall@20", "ndcg@20"):
            assert check.reloaded[split][metric] == pytest.approx(check.final[split][metric], abs=1e-6)
    # every model learns more than chance on the demo data (a random ranking's Recall@20 is about 20/900)
    assert check.final["test"]["recall@20"] > 0.05

"""The Python façade: ``from diffrec_cli import train, load_run, recommend`` (imported lazily)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest

import diffrec_cli
from conftest import FAST_MODEL
from diffrec_cli.errors import DiffrecError

SETTINGS = {"epochs": 2, "eval_every": 1, "batch_size": 64, "device": "cpu", "dims": [32], "steps": 5, "emb_size": 4}


def test_importing_the_package_stays_light_and_the_facade_resolves_lazily():
    script = ("import sys, diffrec_cli\n"
              "heavy = [m for m in ('torch', 'numpy', 'polars', 'typer') if m in sys.modules]\n"
              "from diffrec_cli import train, load_run, recommend\n"
              "print(heavy, train.__module__, load_run.__module__, recommend.__module__)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ})
    assert result.stdout.split() == ["[]", "diffrec_cli.api", "diffrec_cli.api", "diffrec_cli.api"], result.stderr
    assert {"train", "load_run", "recommend"} <= set(dir(diffrec_cli))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        diffrec_cli.nothing  # noqa: B018


def test_train_load_and_recommend_agree(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    from diffrec_cli import load_run, recommend, train

    outcome = train("diffrec", "tiny", home=tiny_home.root, **SETTINGS)
    assert outcome.run.path.parent == tiny_home.runs_dir and outcome.result.epochs_run == 2
    recorded = json.loads((outcome.run.path / "config.json").read_text())
    assert recorded["train"]["epochs"] == 2 and recorded["model_spec"]["config"]["dims"] == [32]
    direct = recommend(outcome, ["u1", "u2"], k=5)
    assert direct["user"].to_list() == ["u1"] * 5 + ["u2"] * 5 and direct["rank"].to_list() == [1, 2, 3, 4, 5] * 2
    served = load_run(outcome.run.id[-4:], home=tiny_home.root)  # a suffix of the id, as the CLI takes
    assert served.meta.model.name == "diffrec"
    assert recommend(served, ["u1", "u2"], k=5).equals(direct)
    assert recommend(outcome.run.id, ["u1", "u2"], k=5, home=tiny_home.root).equals(direct)
    with pytest.raises(DiffrecError, match="unknown user id 'nobody' in dataset 'tiny'"):
        recommend(served, ["u1", "nobody"], k=5)
    skipped = recommend(served, ["u1", "nobody"], k=5, skip_unknown=True)
    alone = direct.filter(pl.col("user") == "u1")  # scored in a batch of two: equal up to rounding
    assert skipped.select("user", "rank", "item").equals(alone.select("user", "rank", "item"))
    assert skipped["score"].to_list() == pytest.approx(alone["score"].to_list(), rel=1e-5)


def test_train_takes_a_config_file_or_dict_and_keywords_override(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    from diffrec_cli import train

    config = tmp_path / "c.toml"
    config.write_text('dataset = "tiny"\n[train]\nepochs = 1\neval_every = 1\nbatch_size = 64\ndevice = "cpu"\n'
                      f"[model]\ndims = [16]\nsteps = {FAST_MODEL['steps']}\nemb_size = 4\n")
    from_file = train(config=config, home=tiny_home.root, lr=0.01)
    assert (from_file.config.dataset, from_file.config.epochs, from_file.config.lr) == ("tiny", 1, 0.01)
    from_dict = train(config={"train": {"epochs": 1, "eval_every": 1}, "dims": [16], "steps": 5, "emb_size": 4},
                      dataset="tiny", home=tiny_home.root, device="cpu")
    assert from_dict.config.epochs == 1 and from_dict.spec.config["dims"] == [16]
    with pytest.raises(DiffrecError, match="unknown model 'nope'"):
        train("nope", "tiny", home=tiny_home.root)

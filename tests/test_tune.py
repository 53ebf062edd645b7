"""``diffrec tune``: search spaces, trial planning, selection on validation only, and the CLI end to end."""

from __future__ import annotations

import json
import random
import re

import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.errors import DiffrecError
from diffrec_cli.plugins import get_registry
from diffrec_cli.runs import read_runs
from diffrec_cli.training.events import Evaluated
from diffrec_cli.convert import parse_duration
from diffrec_cli.tuning import (SearchSpace, Trial, TuneResult, default_space, plan_trials,
                                read_space_file, tune)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SPACE_TOML = """
# fixed settings for every trial
epochs = 2
eval_every = 1
batch_size = 64
steps = 5
emb_size = 4

[search]
lr = [1e-3, 1e-2]
dims = [[16], [32]]
"""


def test_space_file_grid_and_fixed_settings(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML)
    space, fixed = read_space_file(path)
    assert fixed == {"epochs": 2, "eval_every": 1, "batch_size": 64, "steps": 5, "emb_size": 4}
    assert space.grid_size() == 4
    assert list(space.grid()) == [{"lr": 1e-3, "dims": [16]}, {"lr": 1e-3, "dims": [32]},
                                  {"lr": 1e-2, "dims": [16]}, {"lr": 1e-2, "dims": [32]}]
    (tmp_path / "bad.toml").write_text("lr = [1]\n")
    with pytest.raises(DiffrecError, match=r"\[search\]"):
        read_space_file(tmp_path / "bad.toml")


def test_plan_trials_grid_random_auto():
    space = SearchSpace({"a": [1, 2, 3], "b": ["x", "y"]})
    assert plan_trials(space, "auto")[0] == "grid" and len(plan_trials(space, "auto")[1]) == 6
    strategy, points = plan_trials(space, "auto", max_trials=4, seed=3)
    assert strategy == "random" and len(points) == 4
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 4  # no repeats
    assert plan_trials(space, "random", max_trials=50)[1].__len__() == 6  # never more than the grid
    assert plan_trials(space, "grid", max_trials=2)[1] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}]
    assert plan_trials(space, "random", max_trials=4, seed=3) == plan_trials(space, "random", max_trials=4, seed=3)
    ranged = SearchSpace.from_dict({"lr": {"loguniform": [1e-5, 1e-2]}, "n": {"int": [1, 3]}})
    with pytest.raises(DiffrecError, match="'lr' is a range") as refused:
        plan_trials(ranged, "grid")
    assert (refused.value.hint.options, refused.value.hint.value) == (("strategy",), "random")
    _, points = plan_trials(ranged, "auto", max_trials=30)
    assert all(1e-5 <= p["lr"] <= 1e-2 and p["n"] in (1, 2, 3) for p in points)
    rng = random.Random(0)
    lrs = [ranged.sample(rng)["lr"] for _ in range(2000)]
    assert 0.4 < sum(lr < 10 ** -3.5 for lr in lrs) / 2000 < 0.6  # log-uniform: half below the log-midpoint


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("15m") == 900 and parse_duration("1h30m") == 5400
    assert parse_duration(None) is None
    for bad in ("soon", "nan", "-5", "0"):
        with pytest.raises(DiffrecError):
            parse_duration(bad)


def test_range_bounds_must_be_numbers():
    with pytest.raises(DiffrecError, match="bounds must be numbers"):
        SearchSpace.from_dict({"lr": {"uniform": ["a", 1]}})


def test_selection_uses_validation_only():
    trials = [Trial(1, {"a": 1}, "finished", valid={"recall@20": 0.30}, test={"recall@20": 0.10}),
              Trial(2, {"a": 2}, "finished", valid={"recall@20": 0.20}, test={"recall@20": 0.90}),
              Trial(3, {"a": 3}, "failed", error="boom")]
    result = TuneResult("t", None, "m", "d", "grid", "recall@20", {}, {}, trials)
    assert result.best.number == 1
    assert [t.number for t in result.ranked] == [1, 2]


def test_default_space_is_the_models_declared_one(tiny_home):
    space = default_space(get_registry(), "diffrec")
    assert space.choices["lr"] == [1e-5, 1e-4, 1e-3, 1e-2]
    assert space.choices["dims"] == [[300], [200, 600], [1000]]


def test_tune_cli_runs_a_four_trial_grid(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "space.toml"
    path.write_text(SPACE_TOML)
    result = CliRunner().invoke(app, ["tune", "--model", "diffrec", "--dataset", "tiny", "--space", str(path),
                                      "--set", "device=cpu", "--no-live"])
    assert result.exit_code == 0, result.output
    out = ANSI.sub("", result.output)
    assert "4 trials, sorted by validation recall@20" in out
    summary_path = re.search(r"summary: (\S+tune\.json)", out.replace("\n", "")).group(1)
    summary = json.loads(open(summary_path).read())
    assert [t["status"] for t in summary["trials"]] == ["finished"] * 4
    scores = {t["number"]: t["valid"]["recall@20"] for t in summary["trials"]}
    best = max(scores, key=lambda n: (scores[n], -n))
    assert summary["selected"] == best
    assert f"selected trial {best} " in out
    # every trial is an ordinary run; the selected one is browsable like any other
    runs = {r.id: r for r in read_runs(tiny_home.runs_dir)}
    assert len(runs) == 4 and all(r.status == "finished" and r.problems == [] for r in runs.values())
    chosen = summary["trials"][best - 1]
    assert runs[chosen["run_id"]].final["valid"]["recall@20"] == pytest.approx(scores[best])
    assert runs[chosen["run_id"]].config["model_spec"]["config"]["dims"] == chosen["params"]["dims"]
    evaluated = CliRunner().invoke(app, ["eval", chosen["run_id"], "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["valid"]["recall@20"] == pytest.approx(scores[best], abs=1e-9)
    # the rows of the table come sorted by the validation metric
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    order = [int(cells[1]) for cells in rows if cells and cells[0].isdigit()]
    assert order == sorted(scores, key=lambda n: (-scores[n], n))


def test_tune_records_failed_trials_and_timeout(tiny_home, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    fixed = {"epochs": 1, "eval_every": 1, "steps": 5, "dims": [8], "emb_size": 4, "device": "cpu"}
    space = SearchSpace({"dropout": [0.1, 2.0]})  # 2.0 is rejected by the model
    result = tune("diffrec", "tiny", get_registry(), home=tiny_home, space=space, fixed=fixed)
    assert [t.status for t in result.trials] == ["finished", "failed"]
    assert "dropout" in result.trials[1].error and result.best.number == 1
    with pytest.raises(DiffrecError, match="no trial"):
        tune("diffrec", "tiny", get_registry(), home=tiny_home, space=space, fixed=fixed, timeout=1e-9)


def test_ctrl_c_in_a_trial_ends_the_search(tiny_home, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    fixed = {"epochs": 3, "eval_every": 1, "steps": 5, "dims": [8], "emb_size": 4, "device": "cpu"}
    evaluations = []

    def press_ctrl_c_on_the_second_evaluation(event):
        if isinstance(event, Evaluated):
            evaluations.append(event.epoch)
            if len(evaluations) == 2:
                raise KeyboardInterrupt

    result = tune("diffrec", "tiny", get_registry(), home=tiny_home, space=SearchSpace({"lr": [1e-3, 1e-2, 1e-1]}),
                  fixed=fixed, reporter=press_ctrl_c_on_the_second_evaluation)
    assert result.interrupted and not result.timed_out
    assert [t.status for t in result.trials] == ["stopped", "skipped", "skipped"]
    assert result.best.number == 1 and result.best.run_id  # the first trial's best evaluation still counts
    assert evaluations == [1, 2]

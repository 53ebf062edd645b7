"""The ``diffrec`` command through typer's CliRunner: data import/list/info, train, eval, recommend."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import FAST_MODEL, FAST_TRAIN, make_tiny
from diffrec_cli.cli.app import app
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import reset_plugins

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_cli(args, env=None):
    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise AssertionError(f"diffrec {' '.join(map(str, args))} exited {result.exit_code}:\n"
                             f"{result.output}\n{result.exception!r}")
    return result


def plain(text: str) -> str:
    return ANSI.sub("", text)


def fast_sets():
    out = []
    for key, value in {**FAST_MODEL, **FAST_TRAIN}.items():
        out += ["--set", f"{key}={value}"]
    return out


def write_split(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    # 7 users, 9 items; every user has 4 training rows, 1 validation row, 1 test row (distinct items)
    train, valid, test = [], [], []
    for u in range(7):
        items = rng.choice(9, size=6, replace=False)
        train += [[u, i] for i in items[:4]]
        valid.append([u, items[4]])
        test.append([u, items[5]])
    train.append(train[0])  # one duplicate
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        np.save(folder / f"{name}_list.npy", np.array(rows, dtype=np.int64))
    return folder


# ----- data -----------------------------------------------------------------------------------------
def test_data_import_list_info(home, tmp_path):
    folder = write_split(tmp_path / "split")
    result = run_cli(["data", "import-split", folder, "--name", "mini"])
    text = plain(result.stdout)
    assert re.search(r"users\s*│\s*7\b", text), text
    assert re.search(r"train interactions\s*│\s*28\b", text), text
    assert "saved to" in text
    assert home.names() == ["mini"]

    listing = json.loads(run_cli(["data", "list", "--json"]).stdout)
    assert listing == [{"name": "mini", "kind": "dataset", "protocol": "split-folder", "users": 7, "items": 9, "train": 28, "valid": 7, "test": 7,
                        "interactions": 42, "density": pytest.approx(42 / 63)}]
    table = plain(run_cli(["data", "list"]).stdout)
    row = next(line for line in table.splitlines() if "mini" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == ["mini", "7", "9", "28", "7", "7", "66.6667%", "split-folder"]

    info = json.loads(run_cli(["data", "info", "mini", "--json"]).stdout)
    assert info["counts"]["train"] == 28 and info["counts"]["users"] == 7
    assert info["duplicates_dropped"]["train"] == 1
    assert info["fingerprint"] == home.load("mini").fingerprint()
    text = plain(run_cli(["data", "info", "mini"]).stdout)
    for label, value in (("users", "7"), ("items", "9"), ("valid interactions", "7"),
                         ("all interactions", "42"), ("density", "66.6667%"), ("fingerprint", info["fingerprint"])):
        assert re.search(rf"{label}\s*│\s*{re.escape(value)}(\s|$)", text), (label, text)

    run_cli(["data", "remove", "mini"])
    assert home.names() == []
    assert "no datasets" in run_cli(["data", "list"]).stdout


def test_import_with_force_replaces(home, tmp_path):
    folder = write_split(tmp_path / "split")
    run_cli(["data", "import-split", folder, "--name", "mini"])
    before = home.load("mini").fingerprint()
    np.save(folder / "test_list.npy", np.array([[0, 0]], dtype=np.int64))
    run_cli(["data", "import-split", folder, "--name", "mini", "--force"])
    assert home.load("mini").test.nnz == 1
    assert home.load("mini").fingerprint() != before


# ----- train, eval, recommend on one trained run --------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-home")
    home = DataHome(root)
    home.save(make_tiny())
    env = {"DIFFREC_HOME": str(root), "DIFFREC_LOAD_PLUGINS": ""}
    reset_plugins()
    result = run_cli(["train", "--dataset", "tiny", "--device", "cpu", "--quiet", *fast_sets()], env=env)
    reset_plugins()
    runs = list(home.runs_dir.iterdir())
    assert len(runs) == 1
    return home, runs[0], env, result


def test_train_creates_a_finished_run(trained_run):
    home, run, _, result = trained_run
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["model_spec"]["config"]["dims"] == [32]
    final = json.loads((run / "final.json").read_text())
    assert final["epochs_run"] == 2
    assert len(json.loads((run / "metrics.json").read_text())) == 2  # eval_every=1
    assert (run / "checkpoint" / "model.safetensors").is_file()
    out = plain(result.stdout)
    assert "best epoch" in out and str(run) in out.replace("\n", "")
    assert "training diffrec" not in out  # --quiet hides progress


def test_eval_reproduces_training_metrics(trained_run):
    home, run, env, _ = trained_run
    metrics = json.loads(run_cli(["eval", run.name, "--json"], env=env).stdout)
    final = json.loads((run / "final.json").read_text())
    saved = json.loads((run / "checkpoint" / "checkpoint.json").read_text())["metrics"]
    for split in ("valid", "test"):
        assert set(metrics[split]) == set(final[split])
        for name, value in final[split].items():
            assert metrics[split][name] == pytest.approx(value, rel=1e-9, abs=1e-12), (split, name)
            assert saved[split][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
        assert metrics[split]["users"] == 40
    assert metrics["valid"]["recall@20"] > 0
    only_valid = json.loads(run_cli(["eval", run.name[:-3], "--json", "--split", "valid"], env=env).stdout)
    assert set(only_valid) == {"valid"}
    assert only_valid["valid"]["ndcg@10"] == pytest.approx(final["valid"]["ndcg@10"], rel=1e-9)


def _seen(data, raw_user):
    u = data.user_index(raw_user)
    return {str(data.item_ids[i]) for s in ("train", "valid", "test")
            for i in data.split(s).indices[data.split(s).indptr[u]:data.split(s).indptr[u + 1]]}


def test_recommend_prints_k_unseen_items(trained_run):
    home, run, env, _ = trained_run
    data = home.load("tiny")
    out = plain(run_cli(["recommend", run.name, "--user", "u1", "-k", "3"], env=env).stdout)
    line = next(line for line in out.splitlines() if re.match(r"\s*│?\s*u1\s*│", line))
    items = re.findall(r"\bi\d+\b", line)
    assert len(items) == 3 and len(set(items)) == 3
    assert not set(items) & _seen(data, "u1")
    assert len(_seen(data, "u1")) == 8  # the fixture's users have 8 interactions


def test_recommend_users_file_to_csv_and_parquet(trained_run, tmp_path):
    home, run, env, _ = trained_run
    data = home.load("tiny")
    users_file = tmp_path / "users.txt"
    users_file.write_text("u0\nu5\n\nu12\n")
    csv_out, pq_out = tmp_path / "recs.csv", tmp_path / "recs.parquet"
    run_cli(["recommend", run.name, "--users-file", users_file, "-k", "4", "--out", csv_out], env=env)
    run_cli(["recommend", run.name, "--users-file", users_file, "-k", "4", "--out", pq_out], env=env)
    csv = pl.read_csv(csv_out, schema_overrides={"user": pl.String, "item": pl.String})
    pq = pl.read_parquet(pq_out)
    assert csv.columns == ["user", "rank", "item", "score"]
    assert csv.height == 12
    assert csv["user"].to_list() == ["u0"] * 4 + ["u5"] * 4 + ["u12"] * 4
    assert csv["rank"].to_list() == [1, 2, 3, 4] * 3
    assert csv.select("user", "rank", "item").equals(pq.select("user", "rank", "item"))
    np.testing.assert_allclose(csv["score"].to_numpy(), pq["score"].to_numpy(), rtol=1e-6)
    for user, group in csv.group_by("user", maintain_order=True):
        scores = group["score"].to_list()
        assert scores == sorted(scores, reverse=True)
        assert not set(group["item"].to_list()) & _seen(data, user[0])
    # a CSV users file with a 'user' column works too, and agrees with the --user output
    users_csv = tmp_path / "users.csv"
    users_csv.write_text("user,other\nu5,x\n")
    out2 = tmp_path / "one.csv"
    run_cli(["recommend", run.name, "--users-file", users_csv, "-k", "4", "--out", out2], env=env)
    one = pl.read_csv(out2, schema_overrides={"user": pl.String, "item": pl.String})
    assert one["item"].to_list() == csv.filter(pl.col("user") == "u5")["item"].to_list()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args, shown", [
    (["data", "import", "--help"], "User id column [default: guessed]."),
    (["data", "import-split", "--help"], "[item_emb.npy]"),
    (["train", "--help"], "([train] and [model] tables"),
    (["tune", "--help"], "a [search] table"),
])
def test_help_shows_square_brackets_literally(args, shown):
    # rich reads "[word]" as a style tag and drops it unless escaped
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0
    assert shown in " ".join(plain(result.output).split())


def test_error_messages_keep_square_brackets(home):
    result = CliRunner().invoke(app, ["train", "--dataset", "[bold]nope", "--home", str(home.root)])
    assert result.exit_code == 2
    assert "[bold]nope" in plain(result.output)

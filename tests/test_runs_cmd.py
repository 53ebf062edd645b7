"""``diffrec runs list/show/rm/export`` over hand-made run folders (written with ``runs.Run``)."""

from __future__ import annotations

import io
import json
import re

import polars as pl
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.runs import Run

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STARTED = 1772360100.0  # a fixed start time; shown in local time

# id, model, dataset, status, metric, [(epoch, valid metric, test metric)]
RUNS = [
    ("20260301-101500-diffrec-ml-1m-9098", "diffrec", "ml-1m", "finished", "recall@20",
     [(5, 0.10, 0.09), (10, 0.15, 0.14), (15, 0.12, 0.11)]),
    ("20260301-111500-ease-ml-1m-a1b2", "ease", "ml-1m", "finished", "recall@20", [(1, 0.18, 0.17)]),
    ("20260302-090000-multivae-demo-c0de", "multivae", "demo", "running", "ndcg@10", [(5, 0.30, 0.20)]),
    ("20260302-090100-diffrec-demo-0de9", "diffrec", "demo", "failed", "recall@20", []),
]


def make_runs(runs_dir):
    for run_id, model, dataset, status, metric, evaluations in RUNS:
        path = runs_dir / run_id
        path.mkdir(parents=True)
        run = Run(path)
        run.write_config({"model": model, "dataset": dataset, "started": STARTED, "parameters": 1234,
                          "train": {"model": model, "dataset": dataset, "metric": metric, "ks": [10, 20],
                                    "lr": 0.001},
                          "model_spec": {"name": model, "config": {"dims": [200, 600]}, "components": {
                              "schedule": {"name": "linear-var", "config": {"steps": 40}}}}})
        run.set_status(status)
        for epoch, valid, test in evaluations:
            run.add_evaluation({"epoch": epoch, "valid": {metric: valid, "users": 10},
                                "test": {metric: test, "users": 10}, "seconds": 0.5, "loss": 1.0 / epoch})
        if status == "finished":
            best = max(evaluations, key=lambda e: e[1])
            run.write_final({"best_epoch": best[0], "epochs_run": evaluations[-1][0], "valid": {metric: best[1]},
                             "test": {metric: best[2]}, "seconds": 65.0})


@pytest.fixture
def runs_home(home):
    make_runs(home.runs_dir)
    return home


def cli(*args, code=0, columns=80):
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_list_fits_80_columns_and_shows_ids_the_cli_accepts(runs_home):
    out = ANSI.sub("", cli("runs", "list").stdout)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line.split() for line in lines if re.match(r"^\S{4,}\s+\d\d-\d\d \d\d:\d\d", line)]
    assert [row[0] for row in rows] == ["9098", "a1b2", "c0de", "0de9"]
    assert [row[3:6] for row in rows] == [["diffrec", "ml-1m", "finished"], ["ease", "ml-1m", "finished"],
                                          ["multivae", "demo", "running"], ["diffrec", "demo", "failed"]]
    assert rows[0][6:] == ["10", "0.1500", "0.1400"] and rows[3][6:] == ["–", "–", "–"]
    assert "valid, test: each run's selection metric" in out  # ndcg@10 for one run, recall@20 for the others
    for short in ("9098", "a1b2", "c0de", "0de9"):  # every shown id is accepted back
        shown = json.loads(cli("runs", "show", short, "--json").stdout)
        assert shown["id"].endswith(short)


def test_list_filters_and_json(runs_home):
    rows = json.loads(cli("runs", "list", "--json", "--dataset", "ml-1m").stdout)
    assert [r["id"] for r in rows] == [RUNS[0][0], RUNS[1][0]]
    assert rows[0]["best_epoch"] == 10 and rows[0]["valid"] == {"recall@20": 0.15}
    assert rows[0]["seconds"] == 65.0 and rows[0]["evaluations"] == 3 and rows[0]["status"] == "finished"
    running = json.loads(cli("runs", "list", "--json", "--status", "running").stdout)
    assert [(r["id"], r["metric"], r["best_epoch"]) for r in running] == [(RUNS[2][0], "ndcg@10", 5)]
    both = json.loads(cli("runs", "list", "--json", "--model", "diffrec", "--dataset", "demo").stdout)
    assert [r["id"] for r in both] == [RUNS[3][0]]
    bad = cli("runs", "list", "--status", "done", code=2)
    assert bad.stderr.strip() == "error: --status must be one of running, finished, failed, stopped, crashed, got 'done'"
    assert "no runs match" in cli("runs", "list", "--model", "lightgcn").stdout


def test_show_prints_facts_metrics_and_settings(runs_home):
    out = ANSI.sub("", cli("runs", "show", "9098").stdout)
    assert max(len(line) for line in out.splitlines()) <= 80
    text = " ".join(out.split())
    assert f"run {RUNS[0][0]}" in text and "status finished" in text and "best epoch 10" in text
    assert "parameters 1,234" in text and "wall time 1:05" in text and "schedule linear-var" in text
    assert "steps 40" in text and "dims [200, 600]" in text
    assert "valid recall │ – │ 0.1500" in text  # the metrics table, @10 missing
    shown = json.loads(cli("runs", "show", "ml-1m-9098", "--json").stdout)
    assert [e["epoch"] for e in shown["evaluations"]] == [5, 10, 15]
    assert shown["config"]["train"]["lr"] == 0.001 and shown["final"]["best_epoch"] == 10


def test_rm_removes_all_named_runs_or_none(runs_home):
    runs_dir = runs_home.runs_dir
    unknown = cli("runs", "rm", "9098", "ffff", code=2)
    assert unknown.stderr.startswith("error: no run or checkpoint 'ffff'")
    assert len(list(runs_dir.iterdir())) == 4
    running = cli("runs", "rm", "9098", "c0de", code=2)
    assert running.stderr.strip() == (f"error: run {RUNS[2][0]} is marked running; a training may still be "
                                      "writing it; use --force to remove it anyway")
    assert len(list(runs_dir.iterdir())) == 4
    out = cli("runs", "rm", "9098", "a1b2", RUNS[0][0]).stdout
    assert out.splitlines() == [f"removed run {RUNS[0][0]}", f"removed run {RUNS[1][0]}"]
    assert sorted(p.name for p in runs_dir.iterdir()) == [RUNS[2][0], RUNS[3][0]]
    cli("runs", "rm", "c0de", "--force")
    assert [p.name for p in runs_dir.iterdir()] == [RUNS[3][0]]


def test_export_writes_every_evaluation_to_csv_parquet_or_stdout(runs_home, tmp_path):
    cli("runs", "export", "9098", "c0de", "0de9", "--out", tmp_path / "h.parquet")
    frame = pl.read_parquet(tmp_path / "h.parquet")
    assert frame.columns == ["run", "model", "dataset", "epoch", "seconds", "loss", "valid_recall@20",
                             "valid_ndcg@10", "test_recall@20", "test_ndcg@10"]
    assert frame["run"].to_list() == [RUNS[0][0]] * 3 + [RUNS[2][0]]
    assert frame["epoch"].to_list() == [5, 10, 15, 5]
    assert frame["valid_recall@20"].to_list() == [0.10, 0.15, 0.12, None]
    assert frame["test_ndcg@10"].to_list() == [None, None, None, 0.20]
    assert frame["loss"].to_list() == [0.2, 0.1, 1 / 15, 0.2]
    cli("runs", "export", "9098", "c0de", "--out", tmp_path / "h.csv")
    assert pl.read_csv(tmp_path / "h.csv").equals(frame)
    stdout = cli("runs", "export", "9098", "c0de", "--out", "-").stdout
    assert pl.read_csv(io.StringIO(stdout)).equals(frame)
    bad = cli("runs", "export", "9098", "--out", tmp_path / "h.xlsx", code=2)
    assert bad.stderr.strip() == "error: --out must end in .csv or .parquet (or be - for standard output), got 'h.xlsx'"

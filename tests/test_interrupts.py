"""Ctrl-C anywhere exits 130 (SIGTERM 143): a training, a search (with or without a finished trial), every
other command (each has the error boundary), and plugin loading before any command runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner

from conftest import FAST_MODEL
from diffrec_cli.cli.app import app

FAST = {**FAST_MODEL, "eval_every": "1", "batch_size": "64", "device": "cpu"}


def start(args, home, **env):
    return subprocess.Popen([sys.executable, "-m", "diffrec_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "DIFFREC_HOME": str(home.root), "DIFFREC_LOAD_PLUGINS": "", **env})


def wait_for(condition, proc, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def first_run(home):
    runs = sorted(home.runs_dir.iterdir()) if home.runs_dir.is_dir() else []
    return runs[0] if runs else None


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_stopped_training_exits_130_or_143_and_keeps_its_run(tiny_home, sig, code):
    sets = [f"--set={k}={v}" for k, v in {**FAST, "epochs": "100000", "patience": "100000"}.items()]
    proc = start(["train", "--dataset", "tiny", "--no-live", "--samples", "0", *sets], tiny_home)
    wait_for(lambda: first_run(tiny_home) is not None and (first_run(tiny_home) / "metrics.json").exists(), proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, (out, err)
    run = first_run(tiny_home)
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert (run / "checkpoint" / "model.safetensors").is_file()


def test_a_stopped_search_prints_what_finished_and_exits_130(tiny_home, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("[search]\nepochs = [3, 100000]\n")  # the second trial runs until it is stopped
    sets = [f"--set={k}={v}" for k, v in {**FAST, "patience": "100000"}.items()]
    proc = start(["tune", "--dataset", "tiny", "--space", str(space), "--no-live", *sets], tiny_home, COLUMNS="200")

    def second_trial_evaluated() -> bool:
        runs = sorted(tiny_home.runs_dir.iterdir()) if tiny_home.runs_dir.is_dir() else []
        return len(runs) == 2 and (runs[1] / "metrics.json").exists()

    wait_for(second_trial_evaluated, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted (Ctrl-C): the remaining trials were skipped" in out and "selected trial" in out
    (tune_file,) = (tiny_home.root / "tunes").glob("*/tune.json")
    trials = json.loads(tune_file.read_text())["trials"]
    assert [t["status"] for t in trials] == ["finished", "stopped"]
    assert trials[0]["epochs_run"] == 3 and trials[1]["epochs_run"] >= 1


def test_a_search_stopped_before_any_score_exits_130(tiny_home, monkeypatch):
    import diffrec_cli.training.job as job

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "train", interrupted)
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    result = CliRunner().invoke(app, ["tune", "--dataset", "tiny", "--max-trials", "2", "--no-live"])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines()[-1] == "interrupted before any trial finished"


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer's own class, not a click.Group)
            yield from _commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def test_every_command_has_the_error_boundary_that_turns_ctrl_c_into_130():
    group = typer.main.get_command(app)
    names = dict(_commands(group))
    assert {"train", "tune", "recommend", "data import", "data prepare", "runs list"} <= set(names)
    unguarded = [name for name, command in names.items() if not getattr(command.callback, "handles_errors", False)]
    assert unguarded == []


def test_ctrl_c_in_data_import_exits_130(home, tmp_path, monkeypatch):
    import diffrec_cli.data.operations as operations

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(operations, "import_file", interrupted)
    log = tmp_path / "log.csv"
    log.write_text("user,item\n1,2\n")
    result = CliRunner().invoke(app, ["data", "import", str(log), "--name", "x"])
    assert (result.exit_code, result.stderr.strip()) == (130, "interrupted")


def test_ctrl_c_while_plugins_load_exits_130(monkeypatch, capsys):
    import diffrec_cli.plugins as plugins
    from diffrec_cli.cli.app import main

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(plugins, "get_plugins", interrupted)
    try:
        main()
        outcome: object = "returned"
    except SystemExit as exit_info:
        outcome = exit_info.code
    except KeyboardInterrupt:  # caught here: escaping, it would stop the whole test session
        outcome = "KeyboardInterrupt escaped"
    assert outcome == 130
    assert capsys.readouterr().err.strip() == "interrupted"

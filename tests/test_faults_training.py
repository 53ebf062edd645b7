"""Faults around training: signals, crashes, damaged checkpoints, a diverging loss, an interrupted search.

Each case says what the user sees (exit status, one error line) and what the run folder holds afterwards.
The data-side faults (a kill during an import, concurrent writers) are in tests/test_faults.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from conftest import FAST_MODEL
from diffrec_cli.atomic import file_sha256
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.errors import TrainingFailed
from diffrec_cli.models.diffrec import DiffRec
from diffrec_cli.plugins import load_plugins
from diffrec_cli.runs import STALE_SECONDS, process_gone, read_run
from diffrec_cli.training.job import train

LONG = {**FAST_MODEL, "epochs": "100000", "patience": "100000", "eval_every": "1", "batch_size": "64"}


def _start(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "DIFFREC_HOME": str(home), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "diffrec_cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def _train_args(dataset: str = "tiny", **extra: str) -> list[str]:
    sets = [a for k, v in {**LONG, **extra}.items() for a in ("--set", f"{k}={v}")]
    return ["train", "--dataset", dataset, "--device", "cpu", "--no-live", "--samples", "0", *sets]


def _read_until(proc: subprocess.Popen, prefix: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith(prefix) or not line:
            return lines
    raise AssertionError(f"no line starting {prefix!r}: {''.join(lines)}")


def _signal_when(home: Path, args: list[str], prefix: str, signum: int, wait: float = 0.0) -> tuple[int, str]:
    """Run a command, send ``signum`` once a line starting ``prefix`` is out; its exit status and output."""
    proc = _start(home, *args)
    try:
        lines = _read_until(proc, prefix)
        time.sleep(wait)
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(lines) + rest


def test_sigterm_stops_cleanly_with_exit_143(tiny_home):
    code, out = _signal_when(tiny_home.root, _train_args(), "epoch 2", signal.SIGTERM)
    assert code == 143, out
    (run,) = tiny_home.runs_dir.iterdir()
    record = read_run(run)
    assert record.status == "stopped" and record.problems == []
    assert (run / "checkpoint" / "model.safetensors").is_file() and len(record.evaluations) >= 2
    assert record.final["best_epoch"] in [e["epoch"] for e in record.evaluations]


def test_stopping_before_the_first_evaluation_is_stopped_not_failed(tiny_home):
    code, out = _signal_when(tiny_home.root, _train_args(eval_every="100000"), "training diffrec", signal.SIGINT,
                             wait=0.5)
    assert code == 130, out
    assert "stopped before the first evaluation: no metrics yet" in out
    assert "recall" not in out.split("training diffrec", 1)[1]  # no empty metrics table
    (run,) = tiny_home.runs_dir.iterdir()
    status = json.loads((run / "status.json").read_text())
    assert (status["status"], status["note"]) == ("stopped", "no evaluation yet")


def test_a_killed_run_shows_as_crashed_and_still_evaluates(tiny_home):
    proc = _start(tiny_home.root, *_train_args())
    try:
        _read_until(proc, "epoch 2")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = tiny_home.runs_dir.iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "running"  # as the process left it
    assert read_run(run).status == "crashed"
    result = CliRunner().invoke(app, ["eval", run.name, "--json", "--home", str(tiny_home.root)])
    assert result.exit_code == 0, result.output
    assert f"note: run {run.name} crashed (its process is gone); evaluating its last checkpoint" in result.output


def test_crash_detection_by_pid_and_by_heartbeat():
    here = socket.gethostname()
    assert not process_gone({"status": "running", "pid": os.getpid(), "host": here, "updated": time.time()})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert process_gone({"status": "running", "pid": dead.pid, "host": here, "updated": time.time()})
    now = time.time()
    elsewhere = {"status": "running", "pid": 1, "host": here + "-other"}
    assert not process_gone({**elsewhere, "updated": now - STALE_SECONDS + 5}, now=now)
    assert process_gone({**elsewhere, "updated": now - STALE_SECONDS - 5}, now=now)


def _trained_run(home) -> Path:
    result = CliRunner().invoke(app, _train_args(epochs="2", patience="20") + ["--home", str(home.root)])
    assert result.exit_code == 0, result.output
    (run,) = home.runs_dir.iterdir()
    return run


def test_a_flipped_byte_in_the_weights_is_refused(tiny_home):
    run = _trained_run(tiny_home)
    weights = run / "checkpoint" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0x01  # inside the tensor data, past the header
    weights.write_bytes(bytes(raw))
    result = CliRunner().invoke(app, ["eval", run.name, "--home", str(tiny_home.root)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {weights} is damaged: its checksum differs from the one "
                                          f"recorded in checkpoint.json"]


def test_non_finite_weights_are_refused(tiny_home):
    run = _trained_run(tiny_home)
    folder = run / "checkpoint"
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(folder / "model.safetensors"))
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["weights_sha256"] = file_sha256(folder / "model.safetensors")  # intact file, bad values
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["eval", run.name, "--home", str(tiny_home.root)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {folder / 'model.safetensors'} holds non-finite values "
                                          f"(NaN or infinity) in {name}"]


class _Diverging(DiffRec):
    """DiffRec whose loss turns NaN at its fourth optimiser step (epoch 4 when an epoch is one step)."""

    name = "diverging"

    def loss(self, batch):
        self.steps_seen = getattr(self, "steps_seen", 0) + 1
        loss = super().loss(batch)
        return loss * float("nan") if self.steps_seen == 1 + 3 else loss


def test_a_diverging_loss_fails_the_run_naming_epoch_and_step(tiny_home):
    plugins = load_plugins(entry_points=False)
    plugins.registry.add("model", "diverging", _Diverging, "test", "0")
    settings = resolve_settings({}, {**FAST_MODEL, "epochs": "5", "eval_every": "1", "batch_size": "40"},
                                model="diverging", dataset="tiny", device="cpu")
    with pytest.raises(TrainingFailed) as failed:
        train(settings, plugins.registry, home=tiny_home)  # 40 users, batch 40: one step per epoch
    assert str(failed.value).startswith("training diverged: the loss is nan at epoch 4, step 1;")
    assert failed.value.exit_code == 1
    (run,) = tiny_home.runs_dir.iterdir()
    record = read_run(run)
    assert record.status == "failed"
    assert [e["epoch"] for e in record.evaluations] == [1, 2, 3]
    meta = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    assert meta["epoch"] in (1, 2, 3) and np.isfinite(meta["metrics"]["valid"]["recall@20"])


def test_tune_resume_keeps_finished_trials_and_resumes_the_interrupted_one(tiny_home):
    space = tiny_home.root / "space.toml"
    space.write_text('epochs = 40\neval_every = 1\npatience = 100\nbatch_size = 64\ndims = [32]\nsteps = 5\n'
                     'emb_size = 4\ndevice = "cpu"\n[search]\nlr = [0.001, 0.002, 0.003]\n')
    proc = _start(tiny_home.root, "tune", "--model", "diffrec", "--dataset", "tiny", "--space", str(space),
                  "--no-live")
    try:
        deadline = time.monotonic() + 120
        while True:  # kill the search once its second trial has a resumable state
            runs = sorted(tiny_home.runs_dir.iterdir()) if tiny_home.runs_dir.is_dir() else []
            if len(runs) == 2 and list((runs[1] / "resume").glob("epoch-*.json")):
                break
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first, second = sorted(tiny_home.runs_dir.iterdir())
    first_final = (first / "final.json").stat().st_mtime_ns
    (tune_dir,) = (tiny_home.root / "tunes").iterdir()
    summary = json.loads((tune_dir / "tune.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["finished", "running", "pending"]
    assert summary["trials"][1]["run_id"] == second.name

    resumed = _start(tiny_home.root, "tune", "--resume", tune_dir.name, "--no-live")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    summary = json.loads((tune_dir / "tune.json").read_text())
    assert [t["status"] for t in summary["trials"]] == ["finished"] * 3
    assert [t["run_id"] for t in summary["trials"][:2]] == [first.name, second.name]
    assert (first / "final.json").stat().st_mtime_ns == first_final  # not trained again
    assert json.loads((second / "config.json").read_text())["resumed"][0]["after_epoch"] >= 1
    assert len(list(tiny_home.runs_dir.iterdir())) == 3

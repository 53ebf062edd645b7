"""Resume after a crash: a training killed with SIGKILL and resumed ends bit-identical to one never stopped.

Everything goes through the real command in subprocesses: one uninterrupted run, one killed (``kill -9``)
right after a resumable state appeared, then ``diffrec train --resume`` on the killed run. Every tensor of the
best checkpoint and the final metrics must be identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SETTINGS = {  # small models on the demo data; patience high so every run trains all its epochs
    "diffrec": {"dims": "[32]", "steps": "5", "emb_size": "4"},
    "ldiffrec": {"n_clusters": "2", "latent_size": "12", "denoiser_dims": "[16]", "emb_size": "4", "steps": "5"},
    "multivae": {"dims": "[16, 32]"},
}
TRAIN = {"epochs": "8", "eval_every": "2", "checkpoint_every": "1", "patience": "100", "batch_size": "200"}
KILL_AFTER = 3  # epochs: the killed run dies right after its third resumable state


def _command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "diffrec_cli", "train", "--home", str(home), "--no-live", "--samples", "0", *args]


def _sets(model: str) -> list[str]:
    return ["--device", "cpu", *(a for k, v in {**SETTINGS[model], **TRAIN}.items() for a in ("--set", f"{k}={v}"))]


def _env() -> dict[str, str]:
    # one thread each: the two runs side by side do the same arithmetic as either alone
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _only_run(runs: Path, exclude: set[Path]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [p for p in runs.glob("*") if p.is_dir() and p not in exclude] if runs.is_dir() else []
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no run folder appeared")


def _kill_after_state(home: Path, model: str, epoch: int) -> Path:
    """Start a training, SIGKILL it as soon as its resumable state for ``epoch`` exists; its run folder."""
    before = set(home.joinpath("runs").glob("*"))
    proc = subprocess.Popen(_command(home, "--model", model, "--dataset", "demo", *_sets(model)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    try:
        run = _only_run(home / "runs", before)
        deadline = time.monotonic() + 120
        while not (run / "resume" / f"epoch-{epoch:06d}.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no resumable state appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return run


@pytest.mark.parametrize("model", sorted(SETTINGS))
def test_killed_and_resumed_equals_uninterrupted(demo_home, model, tmp_path):
    home, reference_home = demo_home.root, tmp_path / "reference-home"
    shutil.copytree(home, reference_home)
    reference = subprocess.Popen(_command(reference_home, "--model", model, "--dataset", "demo", *_sets(model)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    killed = _kill_after_state(home, model, KILL_AFTER)
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    (uninterrupted,) = list((reference_home / "runs").iterdir())
    # the kill came mid-training: nothing final was written, the status still says running
    assert not (killed / "final.json").exists()
    assert json.loads((killed / "status.json").read_text())["status"] == "running"

    resumed = subprocess.run(_command(home, "--resume", killed.name), capture_output=True, text=True, env=_env(),
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after epoch {KILL_AFTER}" in resumed.stdout

    expected = load_file(str(uninterrupted / "checkpoint" / "model.safetensors"))
    got = load_file(str(killed / "checkpoint" / "model.safetensors"))
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    final_a = json.loads((uninterrupted / "final.json").read_text())
    final_b = json.loads((killed / "final.json").read_text())
    for key in ("best_epoch", "epochs_run", "valid", "test"):
        assert final_a[key] == final_b[key], key
    metrics_a = json.loads((uninterrupted / "metrics.json").read_text())
    metrics_b = json.loads((killed / "metrics.json").read_text())
    assert [(m["epoch"], m["valid"], m["test"], m["loss"]) for m in metrics_a] == \
           [(m["epoch"], m["valid"], m["test"], m["loss"]) for m in metrics_b]
    assert json.loads((killed / "status.json").read_text())["status"] == "finished"
    assert json.loads((killed / "config.json").read_text())["resumed"][0]["after_epoch"] == KILL_AFTER


def test_resume_refuses_other_settings_and_records_allowed_changes(demo_home):
    home = demo_home.root
    done = subprocess.run(_command(home, "--model", "diffrec", "--dataset", "demo", *_sets("diffrec")),
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    (run,) = list((home / "runs").iterdir())
    refused = subprocess.run(_command(home, "--resume", run.name, "--set", "lr=0.1", "--set", "dims=[64]"),
                             capture_output=True, text=True, env=_env(), timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: a resumed run keeps its settings (only epochs, patience may change): lr 0.001 -> 0.1; "
        "dims [32] -> '[64]'"]
    assert json.loads((run / "status.json").read_text())["status"] == "finished"  # untouched
    longer = subprocess.run(_command(home, "--resume", run.name, "--set", "epochs=10"), capture_output=True,
                            text=True, env=_env(), timeout=300)
    assert longer.returncode == 0, longer.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["epochs"] == 10 and config["resumed"][0]["changes"] == {"epochs": 10}
    assert json.loads((run / "final.json").read_text())["epochs_run"] == 10

"""Helpers for plugin authors' tests: train through the real CLI and reload in a fresh process.

``train_and_reload`` runs ``diffrec train`` in one Python process and ``diffrec eval`` in another, so the
second sees nothing but the run directory: a model whose checkpoint misses some state (a graph spectrum
kept only in memory, say) scores differently there and the comparison catches it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffrec_cli.data.store import DataHome
from diffrec_cli.runs import read_runs


@dataclass
class ReloadCheck:
    run_dir: Path
    final: dict[str, Any]  # final.json of the training run
    reloaded: dict[str, Any]  # `diffrec eval --json` of its checkpoint, from a fresh process


def _diffrec(*args: str, home: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "DIFFREC_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "diffrec_cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def train_and_reload(model: str, home: str | Path, *, dataset: str = "demo", epochs: int = 2,
                     settings: dict[str, Any] | None = None, timeout: float = 600) -> ReloadCheck:
    """Train ``model`` on ``dataset`` with the CLI, then evaluate its checkpoint in a new process."""
    home = Path(home)
    sets = [arg for key, value in (settings or {}).items() for arg in ("--set", f"{key}={value}")]
    done = _diffrec("train", "--model", model, "--dataset", dataset, "--epochs", str(epochs), "--quiet",
                    "--no-live", "--samples", "0", *sets, home=home, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"training {model} through the CLI failed ({done.returncode}):\n{done.stderr[-3000:]}")
    runs_dir = DataHome(home).runs_dir
    (run,) = [r for r in read_runs(runs_dir) if r.model == model]
    done = _diffrec("eval", run.id, "--json", home=home, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"evaluating {model}'s checkpoint in a new process failed ({done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
    return ReloadCheck(run.path, run.final or {}, json.loads(done.stdout))

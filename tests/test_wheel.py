"""The wheel as a user gets it: ``pip wheel`` the project, install it (not editable) into a fresh virtual
environment, and run ``diffrec runs list`` and a tiny demo training with the installed console script.

The venv sees this machine's site-packages (torch, polars, ... come from there; no network needed), but
diffrec itself comes only from the wheel: the test checks where ``diffrec_cli`` is imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import diffrec_cli

REPO = Path(diffrec_cli.__file__).resolve().parents[1]
pytestmark = pytest.mark.packaging  # about 30 s; part of the default run (and so of CI)


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_the_wheel_installs_and_works_in_a_fresh_venv(tmp_path):
    # build from a copy, so that the build leaves nothing (build/, *.egg-info) in the working tree
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "diffrec_cli", source / "diffrec_cli", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(DIFFREC_HOME=str(tmp_path / "home"), DIFFREC_LOAD_PLUGINS="", OMP_NUM_THREADS="1")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
        str(source), env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("diffrec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffrec_cli/py.typed" in names and "diffrec_cli/cli/app.py" in names
    assert not [n for n in names if n.startswith(("tests/", "plugins/", "benchmarks/"))]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv), env=env, cwd=tmp_path)
    python, diffrec = str(venv / "bin" / "python"), str(venv / "bin" / "diffrec")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel), env=env, cwd=tmp_path)
    where = run(python, "-c", "import diffrec_cli; print(diffrec_cli.__file__)", env=env, cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(venv)  # the wheel's copy, not the working tree's

    assert "no runs in" in run(diffrec, "runs", "list", env=env, cwd=tmp_path).stdout
    run(diffrec, "train", "--dataset", "demo", "--epochs", "1", "--set", "eval_every=1", "--set", "steps=5",
        "--set", "dims=[16]", "--set", "emb_size=4", "--quiet", "--no-live", "--samples", "0", env=env, cwd=tmp_path)
    (row,) = json.loads(run(diffrec, "runs", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert (row["model"], row["dataset"], row["status"], row["best_epoch"]) == ("diffrec", "demo", "finished", 1)
    assert row["valid"]["recall@20"] > 0

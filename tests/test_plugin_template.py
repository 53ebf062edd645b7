"""``diffrec plugins new``: the package it writes installs into a fresh virtual environment, shows up in
``diffrec plugins``, and its own test (diffrec's contract checks) passes there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import diffrec_cli
from diffrec_cli.cli.app import app

REPO = Path(diffrec_cli.__file__).resolve().parents[1]


def new(*args: str, code: int = 0):
    result = CliRunner().invoke(app, ["plugins", "new", *args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_the_package_it_writes(tmp_path):
    out = new("warmup", "--kind", "schedule", "--dir", str(tmp_path)).stdout
    folder = tmp_path / "diffrec-warmup"
    assert out.splitlines()[0] == f"wrote {folder}"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "README.md", "diffrec_warmup/__init__.py", "diffrec_warmup/schedule.py", "pyproject.toml",
        "tests/test_diffrec_warmup.py"]
    pyproject = (folder / "pyproject.toml").read_text()
    assert '[project.entry-points.diffrec]\nwarmup = "diffrec_warmup"' in pyproject
    assert 'name = "diffrec-warmup"' in pyproject
    init = (folder / "diffrec_warmup" / "__init__.py").read_text()
    assert 'register("warmup", "diffrec_warmup.schedule:WarmupSchedule")' in init
    assert "check_plugin(\"warmup\", tmp_path) == [\"noise_schedule:warmup\"]" in \
        (folder / "tests" / "test_diffrec_warmup.py").read_text()
    assert "diffrec train --set schedule=warmup" in (folder / "README.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["Bad_Name", "--kind", "model"], "a plugin name is lower-case letters and digits, words joined by '-', "
                                      "got 'Bad_Name'"),
    (["fine", "--kind", "loss"], "kind must be one of schedule, reweighting, model, got 'loss'"),
])
def test_bad_names_and_kinds_are_one_line_errors(tmp_path, args, message):
    result = new(*args, "--dir", str(tmp_path), code=2)
    assert result.stderr.strip() == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_left_alone(tmp_path):
    (tmp_path / "diffrec-taken").mkdir()
    (tmp_path / "diffrec-taken" / "mine.txt").write_text("keep")
    result = new("diffrec-taken", "--kind", "model", "--dir", str(tmp_path), code=2)
    assert "already exists" in result.stderr
    assert [p.name for p in (tmp_path / "diffrec-taken").iterdir()] == ["mine.txt"]


def test_generated_plugins_install_list_and_pass_their_contract_tests(tmp_path):
    names = {"schedule": "quad", "reweighting": "recency", "model": "tiny-ae"}
    for kind, name in names.items():
        new(name, "--kind", kind, "--dir", str(tmp_path))
    venv = tmp_path / "venv"
    # --without-pip: the venv's own bundled setuptools could not build; the system's pip and setuptools can
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "DIFFREC_LOAD_PLUGINS": ",".join(names.values()), "OMP_NUM_THREADS": "1"}
    folders = [str(tmp_path / f"diffrec-{name}") for name in names.values()]
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              *[arg for folder in folders for arg in ("-e", folder)]],
                             capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    listing = subprocess.run([python, "-m", "diffrec_cli", "plugins", "--json"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert listing.returncode == 0 and listing.stderr == "", listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["quad"] == {"name": "quad", "version": "0.1.0", "registers": {"noise_schedule": ["quad"]}}
    assert rows["recency"]["registers"] == {"reweighting": ["recency"]}
    assert rows["tiny-ae"]["registers"] == {"model": ["tiny-ae"]}
    tests = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *folders], capture_output=True,
                           text=True, env=env, timeout=300, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "6 passed" in tests.stdout

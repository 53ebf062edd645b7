"""Shared fixtures: an isolated data home, a tiny hand-made dataset, fast model settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from diffrec_cli.contract import tiny_dataset as make_tiny  # the contract checks' dataset, shared by the suite
from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import reset_plugins

# Small enough to train in a second or two, large enough to have signal.
FAST_MODEL = {"dims": "[32]", "steps": "5", "emb_size": "4"}
FAST_TRAIN = {"epochs": "2", "eval_every": "1", "batch_size": "64"}


def invoke(args, env, code=0):
    """The CLI in-process with ``env``; asserts its exit code."""
    from typer.testing import CliRunner

    from diffrec_cli.cli.app import app

    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def home_with_one_run(root: Path, data: InteractionData) -> tuple[DataHome, str, dict[str, str]]:
    """A data home at ``root`` holding ``data`` and one fast DiffRec run on it trained through the CLI:
    the home, the run's id and the environment the CLI ran with (built-in plugins only)."""
    home = DataHome(root)
    home.save(data)
    env = {"DIFFREC_HOME": str(root), "DIFFREC_LOAD_PLUGINS": "", "COLUMNS": "200"}
    sets = [f"--set={k}={v}" for k, v in {**FAST_MODEL, **FAST_TRAIN}.items()]
    reset_plugins()
    invoke(["train", "--dataset", data.name, "--quiet", "--samples", "0", *sets], env)
    reset_plugins()
    (run,) = home.runs_dir.iterdir()
    return home, run.name, env


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Each test sees plugins loaded from scratch and its own environment."""
    monkeypatch.delenv("DIFFREC_LOAD_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def tiny() -> InteractionData:
    return make_tiny()


@pytest.fixture
def home(tmp_path, monkeypatch) -> DataHome:
    """An empty data home, also exported as DIFFREC_HOME for CLI calls."""
    root = tmp_path / "home"
    monkeypatch.setenv("DIFFREC_HOME", str(root))
    return DataHome(root)


@pytest.fixture(scope="session")
def _demo_home_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo-template")
    DataHome(root).load("demo")  # builds the bundled demo dataset once per session
    return root


@pytest.fixture
def demo_home(tmp_path, monkeypatch, _demo_home_template) -> DataHome:
    """A data home that already holds the demo dataset (copied, so tests can't disturb each other)."""
    root = tmp_path / "home"
    shutil.copytree(_demo_home_template, root)
    monkeypatch.setenv("DIFFREC_HOME", str(root))
    return DataHome(root)


@pytest.fixture
def tiny_home(home, tiny) -> DataHome:
    home.save(tiny)
    return home

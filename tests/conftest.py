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

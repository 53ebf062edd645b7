"""Checkpoints written by version 0.1 (before the issue-13 refactor) still load and score the same.

The folders under fixtures/checkpoints-v0.1/ were written by fixtures/make_v01_checkpoints.py with the old
code, each with the scores that model gave then for every user's training row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import load_plugins
from diffrec_cli.serve import load_served
from diffrec_cli.training.checkpoint import load_checkpoint
from fixtures.make_v01_checkpoints import CASES, fixture_data

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints-v0.1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_v01_checkpoint_scores_unchanged(case):
    registry = load_plugins().registry
    loaded = load_checkpoint(FIXTURES / case, registry)
    assert loaded.meta.model.name == CASES[case][0]
    data = fixture_data()
    expected = np.load(FIXTURES / case / "scores.npy", allow_pickle=False)
    rows = np.arange(data.n_users)
    if case == "tdiffrec":  # its input is the time-weighted matrix: covered through load_served below
        return
    with torch.no_grad():
        scores = loaded.model.scores(torch.from_numpy(rows), dense_rows(data.train, rows)).float().numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_v01_checkpoint_serves_with_its_dataset(case, tmp_path):
    """Through load_served: the dataset fingerprint matches and the recorded reweighting is rebuilt."""
    home = DataHome(tmp_path / "home")
    home.save(fixture_data())
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(FIXTURES / case, run / "checkpoint")
    served = load_served(str(run), load_plugins().registry, home=home)
    rows = np.arange(served.data.n_users)
    with torch.no_grad():
        scores = served.model.scores(torch.from_numpy(rows), dense_rows(served.inputs, rows)).float().numpy()
    expected = np.load(FIXTURES / case / "scores.npy", allow_pickle=False)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)

"""T-DiffRec's time-linear reweighting (paper §3.6, Eq. 16) and how it reaches training, checkpoints and serving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffrec_cli.config import resolve_settings
from diffrec_cli.data.ingest import import_split_folder
from diffrec_cli.data.reweighting import TimeLinearReweighting
from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.plugins import get_registry
from diffrec_cli.serve import load_served
from diffrec_cli.data.reweighting import reweighted_matrix
from diffrec_cli.training.job import train

TINY = {"dims": "[8]", "steps": "3", "emb_size": "2", "epochs": "1", "eval_every": "1", "batch_size": "8"}


def test_weights_match_eq16_by_hand():
    # w_m = w_min + (m−1)/(M−1)·(w_max − w_min); M = 5, w_min = 0.1, w_max = 1: steps of 0.9/4 = 0.225
    strategy = TimeLinearReweighting()
    got = strategy.weights(np.arange(5), np.full(5, 5))
    np.testing.assert_allclose(got, [0.1, 0.325, 0.55, 0.775, 1.0], rtol=1e-6)
    assert got.dtype == np.float32
    # w_min = 0.3: steps of 0.7/4 = 0.175; M = 2 gives the two bounds; a lone interaction gets w_max
    strategy = TimeLinearReweighting(w_min=0.3)
    np.testing.assert_allclose(strategy.weights(np.arange(5), np.full(5, 5)), [0.3, 0.475, 0.65, 0.825, 1.0], rtol=1e-6)
    np.testing.assert_allclose(strategy.weights(np.array([1, 0, 0]), np.array([2, 2, 1])), [1.0, 0.3, 1.0], rtol=1e-6)
    # element-wise: entries from several users in any order
    position = np.array([4, 0, 1, 2, 0, 3])
    length = np.array([5, 1, 2, 5, 2, 5])
    np.testing.assert_allclose(strategy.weights(position, length), [1.0, 1.0, 1.0, 0.65, 0.3, 0.825], rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(w_min=0.6, w_max=0.5), dict(w_max=1.5), dict(w_min=-0.1),
                                    dict(w_min=0.0, w_max=0.0), dict(w_min="a")])
def test_bad_bounds_are_errors(kwargs):
    with pytest.raises(DiffrecError):
        TimeLinearReweighting(**kwargs)


def write_ordered_split(folder, with_emb: bool = False):
    """3 users; user 0's training rows in time order are items 5, 2, 7 (so CSR order 2, 5, 7 differs)."""
    folder.mkdir(parents=True)
    train = [[0, 5], [0, 2], [0, 7], [1, 1], [1, 3], [2, 0], [2, 4], [2, 6], [2, 8], [1, 9]]
    valid = [[0, 1], [1, 0], [2, 2]]
    test = [[0, 3], [1, 4], [2, 5]]
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        np.save(folder / f"{name}_list.npy", np.array(rows, dtype=np.int64))
    if with_emb:
        np.save(folder / "item_emb.npy", np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32))
    return folder


def row_values(matrix, user: int) -> dict[int, float]:
    row = matrix.getrow(user)
    return dict(zip(row.indices.tolist(), np.round(row.data.astype(np.float64), 6).tolist()))


def test_training_matrix_follows_the_stored_chronological_order(tmp_path):
    data = import_split_folder(write_ordered_split(tmp_path / "split"), "ordered")
    matrix = reweighted_matrix(data.train, data.train_order, TimeLinearReweighting(w_min=0.1))
    assert row_values(matrix, 0) == {5: 0.1, 2: 0.55, 7: 1.0}
    assert row_values(matrix, 1) == {1: 0.1, 3: 0.55, 9: 1.0}  # items 1, 3, 9 in that order
    # w_min = 0: the oldest interaction leaves the input instead of being stored as an explicit 0
    zero = reweighted_matrix(data.train, data.train_order, TimeLinearReweighting(w_min=0.0))
    assert row_values(zero, 0) == {2: 0.5, 7: 1.0} and zero.nnz == data.train.nnz - 3  # one per user
    # the binary matrix (masks, ground truth) is untouched
    assert set(data.train.data.tolist()) == {1.0}


@pytest.mark.parametrize("model, sets, expected", [
    ("diffrec", {"reweighting": "time-linear", "w_min": "0.3"}, ("time-linear", 0.3)),
    ("tdiffrec", {}, ("time-linear", 0.1)),  # the model's default reweighting
    ("tdiffrec", {"reweighting": "none"}, ("none", None)),  # an explicit choice wins
])
def test_train_records_and_serves_the_reweighting(tmp_path, model, sets, expected):
    home = DataHome(tmp_path / "home")
    home.save(import_split_folder(write_ordered_split(tmp_path / "split"), "ordered"))
    settings = resolve_settings({}, {**TINY, **sets}, model=model, dataset="ordered", device="cpu")
    outcome = train(settings, get_registry(), home=home)
    meta = json.loads((outcome.run.path / "checkpoint" / "checkpoint.json").read_text())
    assert meta["model"]["name"] == model
    assert meta["reweighting"]["name"] == expected[0]
    served = load_served(outcome.run.id, get_registry(), home=home)
    values = row_values(served.inputs, 0)
    if expected[1] is None:
        assert values == {2: 1.0, 5: 1.0, 7: 1.0}
    else:
        assert meta["reweighting"]["config"] == {"w_min": expected[1], "w_max": 1.0}
        assert values == {5: expected[1], 2: round((expected[1] + 1.0) / 2, 6), 7: 1.0}
    np.testing.assert_array_equal(served.inputs.data, outcome.inputs.data)
    # checkpoint round trip: the reloaded model scores the served (reweighted) rows exactly as the trained one
    x = dense_rows(served.inputs, np.arange(served.inputs.shape[0]))
    outcome.model.eval()
    assert torch.equal(served.model.scores(None, x), outcome.model.scores(None, x))

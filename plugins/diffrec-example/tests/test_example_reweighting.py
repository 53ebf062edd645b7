"""exp-decay against a hand-worked sequence."""

import numpy as np
import pytest

from diffrec_cli.errors import DiffrecError
from diffrec_example.reweighting import ExpDecayReweighting


def test_hand_worked_sequence():
    # One user with 5 interactions, half-life 2: ages 4, 3, 2, 1, 0 → decay 1/4, 1/(2√2), 1/2, 1/√2, 1.
    rw = ExpDecayReweighting(w_min=0.2, w_max=1.0, half_life=2.0)
    position = np.array([0, 1, 2, 3, 4])
    length = np.full(5, 5)
    decay = np.array([0.25, 0.5 / np.sqrt(2), 0.5, 1 / np.sqrt(2), 1.0])
    weights = rw.weights(position, length)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, 0.2 + 0.8 * decay, rtol=1e-6)
    assert weights[4] == pytest.approx(1.0)  # newest gets w_max


def test_defaults_several_users_in_any_order():
    rw = ExpDecayReweighting()
    assert rw.config == {"w_min": 0.1, "w_max": 1.0, "half_life": 10.0}
    # users of length 1 and 11, entries not in chronological order (as in a CSR row)
    position = np.array([0, 10, 0, 5])
    length = np.array([1, 11, 11, 11])
    np.testing.assert_allclose(rw.weights(position, length), [1.0, 1.0, 0.55, 0.1 + 0.9 * 2 ** -0.5], rtol=1e-6)
    assert rw.weights(np.array([], dtype=int), np.array([], dtype=int)).shape == (0,)


@pytest.mark.parametrize("kwargs", [
    {"w_min": 0.0}, {"w_min": 0.6, "w_max": 0.5}, {"w_max": 1.5}, {"half_life": 0.0},
    {"half_life": float("inf")}, {"half_life": float("nan")}, {"w_min": "a"},
])
def test_rejects_bad_config(kwargs):
    with pytest.raises(DiffrecError):
        ExpDecayReweighting(**kwargs)


def test_rejects_bad_positions():
    rw = ExpDecayReweighting()
    with pytest.raises(DiffrecError):
        rw.weights(np.array([3]), np.array([3]))
    with pytest.raises(DiffrecError):
        rw.weights(np.array([0, 1]), np.array([2]))

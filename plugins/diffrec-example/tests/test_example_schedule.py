"""The cosine schedule against hand-worked values."""

import math

import numpy as np
import pytest

from diffrec_cli.errors import DiffrecError
from diffrec_example.schedules import CosineSchedule, cosine_betas


def test_closed_form_without_offset():
    # s = 0: f(t) = cos²(tπ/(2T)). T = 3 → f = 1, 3/4, 1/4, 0, so β = 1/4, 2/3, then 1 clipped to max_beta.
    np.testing.assert_allclose(cosine_betas(3, offset=0.0, max_beta=0.999), [0.25, 2 / 3, 0.999], rtol=1e-12)
    # T = 2 → f = 1, 1/2, 0.
    np.testing.assert_allclose(cosine_betas(2, offset=0.0, max_beta=0.9), [0.5, 0.9], rtol=1e-12)


def test_closed_form_with_offset_and_scale():
    s, steps = 0.008, 4
    f = [math.cos((t / steps + s) / (1 + s) * math.pi / 2) ** 2 for t in range(steps + 1)]
    expected = [min(1 - f[t] / f[t - 1], 0.999) for t in range(1, steps + 1)]
    betas = CosineSchedule(steps=steps, scale=0.5).betas()
    assert betas.dtype == np.float64 and betas.shape == (steps,)
    np.testing.assert_allclose(betas, 0.5 * np.array(expected), rtol=1e-12)
    assert expected[-1] == 0.999  # ᾱ(T) = 0, so the last step is the clipped one


def test_defaults_and_config_round_trip():
    schedule = CosineSchedule()
    assert schedule.config == {"steps": 40, "offset": 0.008, "max_beta": 0.999, "scale": 1.0}
    assert schedule.betas().shape == (40,)
    again = CosineSchedule(**schedule.config)
    np.testing.assert_array_equal(again.betas(), schedule.betas())
    # a small scale keeps ᾱ_T near 1, as DiffRec needs
    alpha_bar_T = np.prod(1 - CosineSchedule(scale=1e-3).betas())
    assert 0.99 < alpha_bar_T < 1


@pytest.mark.parametrize("kwargs", [
    {"steps": 0}, {"steps": 2.5}, {"steps": True}, {"steps": "4"},
    {"offset": -0.1}, {"offset": float("inf")}, {"offset": float("nan")},
    {"max_beta": 0.0}, {"max_beta": 1.0},
    {"scale": 0.0}, {"scale": 1.5}, {"scale": float("nan")},
])
def test_rejects_bad_config(kwargs):
    with pytest.raises(DiffrecError):
        CosineSchedule(**kwargs)

"""Noise schedules against the paper's Eq. (4), worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from diffrec_cli.diffusion.schedules import (LinearSchedule, LinearVarianceSchedule, linear_betas,
                                             linear_variance_betas)
from diffrec_cli.errors import DiffrecError

# T = 4, s = 0.1, α_min = 0.1, α_max = 0.4:
#   1 − ᾱ_t = 0.1 · [0.1, 0.2, 0.3, 0.4] = [0.01, 0.02, 0.03, 0.04]  →  ᾱ = [0.99, 0.98, 0.97, 0.96]
#   β_t = 1 − ᾱ_t / ᾱ_{t−1}:  β₂ = 0.01/0.99, β₃ = 0.01/0.98, β₄ = 0.01/0.97
HAND_ONE_MINUS_ALPHA_BAR = np.array([0.01, 0.02, 0.03, 0.04])
HAND_BETAS_2_TO_4 = np.array([0.01 / 0.99, 0.01 / 0.98, 0.01 / 0.97])


def test_linear_variance_betas_match_eq4_by_hand():
    betas = linear_variance_betas(4, 0.1, 0.1, 0.4)
    assert betas.shape == (4,)
    assert betas.dtype == np.float64
    assert betas[0] == pytest.approx(1e-5, abs=0)  # β₁ fixed to first_beta (authors' code)
    np.testing.assert_allclose(betas[1:], HAND_BETAS_2_TO_4, rtol=1e-12)


def test_linear_variance_first_beta_is_configurable():
    betas = linear_variance_betas(4, 0.1, 0.1, 0.4, first_beta=0.002)
    assert betas[0] == 0.002
    np.testing.assert_allclose(betas[1:], HAND_BETAS_2_TO_4, rtol=1e-12)


def test_linear_variance_without_fixed_first_beta_reproduces_eq4_variances():
    # With β₁ left as 1 − ᾱ₁, the cumulative product gives back exactly the variances of Eq. (4).
    betas = linear_variance_betas(4, 0.1, 0.1, 0.4, first_beta=None)
    assert betas[0] == pytest.approx(0.01, rel=1e-12)
    alpha_bar = np.cumprod(1.0 - betas)
    np.testing.assert_allclose(1.0 - alpha_bar, HAND_ONE_MINUS_ALPHA_BAR, rtol=1e-10)


def test_linear_variance_general_t_matches_eq4():
    T, s, lo, hi = 7, 0.3, 0.05, 0.6
    betas = linear_variance_betas(T, s, lo, hi, first_beta=None)
    t = np.arange(1, T + 1)
    expected_var = s * (lo + (t - 1) / (T - 1) * (hi - lo))
    np.testing.assert_allclose(1.0 - np.cumprod(1.0 - betas), expected_var, rtol=1e-10)


def test_linear_variance_caps_beta_at_max_beta():
    # 1 − ᾱ = [0.1, 0.9999] → β₂ = 1 − 0.0001/0.9 ≈ 0.99989 > 0.999, so it is capped.
    betas = linear_variance_betas(2, 1.0, 0.1, 0.9999, first_beta=None)
    assert betas[1] == 0.999
    betas = linear_variance_betas(2, 1.0, 0.1, 0.9999, first_beta=None, max_beta=0.5)
    assert betas[1] == 0.5


def test_linear_betas_values():
    betas = linear_betas(4, 0.1, 0.1, 0.4)
    np.testing.assert_allclose(betas, [1e-5, 0.02, 0.03, 0.04], rtol=1e-12)
    betas = linear_betas(3, 0.5, 0.2, 0.6, first_beta=None)
    np.testing.assert_allclose(betas, [0.1, 0.2, 0.3], rtol=1e-12)


@pytest.mark.parametrize("fn", [linear_variance_betas, linear_betas])
def test_zero_noise_scale_gives_all_zero_betas(fn):
    betas = fn(6, 0.0, 0.1, 0.4)
    assert betas.shape == (6,)
    assert (betas == 0).all()  # β₁ is not set to first_beta either: no noise at all


@pytest.mark.parametrize("cls", [LinearVarianceSchedule, LinearSchedule])
def test_schedule_objects_wrap_the_functions(cls):
    sched = cls(steps=4, noise_scale=0.1, noise_min=0.1, noise_max=0.4)
    fn = linear_variance_betas if cls is LinearVarianceSchedule else linear_betas
    np.testing.assert_array_equal(sched.betas(), fn(4, 0.1, 0.1, 0.4))
    # the config is the whole configuration: rebuilding from it gives the same betas
    assert sched.config == {"steps": 4, "noise_scale": 0.1, "noise_min": 0.1, "noise_max": 0.4, "first_beta": 1e-5}
    np.testing.assert_array_equal(cls(**sched.config).betas(), sched.betas())
    assert (cls(steps=5, noise_scale=0.0).betas() == 0).all()


def test_default_schedule_is_the_authors_ml1m_setting():
    sched = LinearVarianceSchedule()
    assert (sched.steps, sched.noise_scale, sched.noise_min, sched.noise_max) == (40, 0.005, 0.005, 0.01)
    betas = sched.betas()
    assert len(betas) == 40 and betas[0] == 1e-5
    assert (betas > 0).all() and (betas < 1e-3).all()


@pytest.mark.parametrize("cls", [LinearVarianceSchedule, LinearSchedule])
@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"steps": 0}, "steps"),
        ({"steps": -3}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"noise_scale": -0.1}, "noise_scale"),
        ({"noise_scale": 1.5}, "noise_scale"),
        ({"noise_min": 0.0}, "noise_min"),
        ({"noise_min": -0.1}, "noise_min"),
        ({"noise_min": 0.3, "noise_max": 0.2}, "noise_min"),
        ({"noise_max": 1.0}, "noise_max"),
    ],
)
def test_schedule_validation(cls, kwargs, word):
    with pytest.raises(DiffrecError, match=word):
        cls(**kwargs)


def test_steps_one_is_allowed():
    betas = LinearVarianceSchedule(steps=1, noise_scale=0.1, noise_min=0.1, noise_max=0.2).betas()
    assert betas.tolist() == [1e-5]

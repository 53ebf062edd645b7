"""The binomial schedule (Sohl-Dickstein et al. 2015, §2.4.1; the DiffRec authors' fourth), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from diffrec_cli.diffusion.schedules import BinomialSchedule, binomial_betas
from diffrec_cli.errors import DiffrecError
from diffrec_cli.plugins import get_registry


def test_betas_for_three_steps_by_hand():
    # T = 3: β_t = 1/(T − t + 2) = [1/4, 1/3, 1/2]; ᾱ = [3/4, 3/4·2/3, 1/2·1/2] = [3/4, 1/2, 1/4]
    betas = binomial_betas(3, first_beta=None)
    np.testing.assert_allclose(betas, [0.25, 1 / 3, 0.5], rtol=1e-15)
    np.testing.assert_allclose(np.cumprod(1 - betas), [0.75, 0.5, 0.25], rtol=1e-15)


@pytest.mark.parametrize("steps", [1, 2, 5, 40, 1000])
def test_alpha_bar_falls_linearly(steps):
    # ᾱ_t = (T − t + 1)/(T + 1): each step removes the same share 1/(T + 1) of the signal
    alpha_bar = np.cumprod(1 - binomial_betas(steps, first_beta=None))
    t = np.arange(1, steps + 1)
    np.testing.assert_allclose(alpha_bar, (steps - t + 1) / (steps + 1), rtol=1e-12)


def test_fixed_first_beta_as_in_the_authors_code():
    # β₁ = 1e-5, then ᾱ_t = (1 − 1e-5)(T − t + 1)/T for t ≥ 2: T = 4 → (1 − 1e-5)·[1, 3/4, 2/4, 1/4]
    betas = binomial_betas(4)
    assert betas[0] == 1e-5
    np.testing.assert_allclose(betas[1:], [1 / 4, 1 / 3, 1 / 2], rtol=1e-15)
    np.testing.assert_allclose(np.cumprod(1 - betas), (1 - 1e-5) * np.array([1, 0.75, 0.5, 0.25]), rtol=1e-12)


def test_scale_multiplies_every_beta():
    np.testing.assert_allclose(binomial_betas(3, first_beta=None, scale=0.1), [0.025, 1 / 30, 0.05], rtol=1e-15)
    np.testing.assert_allclose(BinomialSchedule(steps=4, scale=0.5).betas(), [5e-6, 1 / 8, 1 / 6, 1 / 4], rtol=1e-15)


def test_schedule_object_config_and_registration():
    schedule = BinomialSchedule(steps=6)
    assert schedule.config == {"steps": 6, "first_beta": 1e-5, "scale": 1.0}
    np.testing.assert_array_equal(BinomialSchedule(**schedule.config).betas(), binomial_betas(6))
    entry = get_registry().get("noise_schedule", "binomial")
    assert entry.cls is BinomialSchedule and entry.plugin == "diffrec"


@pytest.mark.parametrize("kwargs, word", [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
                                          ({"steps": True}, "steps"), ({"first_beta": 0.0}, "first_beta"),
                                          ({"first_beta": 1.0}, "first_beta"), ({"scale": 0.0}, "scale"),
                                          ({"scale": 1.5}, "scale")])
def test_bad_settings_are_one_line_errors(kwargs, word):
    with pytest.raises(DiffrecError, match=word):
        BinomialSchedule(**kwargs)

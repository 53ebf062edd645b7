"""The contract every registered component meets, whoever provides it (built-ins and installed plugins).

Names are collected from a freshly loaded registry at collection time, so an installed plugin's components
are checked too. One class, no per-component branches: a component that needs special treatment here has
broken the contract. The checks themselves live in ``diffrec_cli/contract.py``, where a plugin's own tests
can call them too. A model may declare small settings for these checks as ``test_settings`` (a dict of
``--set``-style values); without one it is built with its defaults.
"""

from __future__ import annotations

import pytest

from diffrec_cli import contract
from diffrec_cli.plugins import get_registry, load_plugins

_COLLECTED = load_plugins().registry
SCHEDULES = _COLLECTED.names("noise_schedule")
REWEIGHTINGS = _COLLECTED.names("reweighting")
MODELS = _COLLECTED.names("model")


def _component(kind: str, name: str):
    return get_registry().get(kind, name).cls


class TestComponentContract:
    @pytest.mark.parametrize("name", SCHEDULES)
    def test_schedule_betas(self, name):
        contract.check_schedule(_component("noise_schedule", name))

    @pytest.mark.parametrize("name", SCHEDULES)
    def test_schedule_forward_process_moments(self, name):
        contract.check_schedule_moments(_component("noise_schedule", name))

    @pytest.mark.parametrize("name", REWEIGHTINGS)
    def test_reweighting_weights(self, name):
        contract.check_reweighting(_component("reweighting", name))

    @pytest.mark.parametrize("name", MODELS)
    def test_model_trains_and_round_trips(self, name, tmp_path):
        contract.check_model(get_registry(), name, tmp_path)


def test_the_contract_checks_catch_a_broken_component():
    class DescendingWeights:  # the oldest interaction counts more than the newest: against the contract
        config: dict = {}

        def weights(self, position, length):
            import numpy as np

            return (1.0 - position / np.maximum(length, 1) * 0.5).astype("float32")

    with pytest.raises(AssertionError, match="newest .* < oldest"):
        contract.check_reweighting(DescendingWeights)


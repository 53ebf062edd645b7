"""The contract every registered component meets, whoever provides it (built-ins and installed plugins).

Names are collected from a freshly loaded registry at collection time, so an installed plugin's components
are checked too. One class, no per-component branches: a component that needs special treatment here has
broken the contract. A model may declare small settings for these checks as ``test_settings`` (a dict of
``--set``-style values); without one it is built with its defaults.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_tiny
from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.models.base import Batch
from diffrec_cli.models.build import build_model
from diffrec_cli.plugins import get_registry, load_plugins
from diffrec_cli.training.checkpoint import CheckpointMeta, DatasetRef, load_checkpoint, save_checkpoint

_COLLECTED = load_plugins().registry
SCHEDULES = _COLLECTED.names("noise_schedule")
REWEIGHTINGS = _COLLECTED.names("reweighting")
MODELS = _COLLECTED.names("model")

# Hand-made chronological positions: four users with 1, 2, 5 and 30 training interactions, entries in a
# scrambled order (as they sit in CSR rows, sorted by item rather than by time).
_LENGTHS = [1, 2, 5, 30]
_rng = np.random.default_rng(7)
_pairs = [(p, n) for n in _LENGTHS for p in range(n)]
_order = _rng.permutation(len(_pairs))
POSITION = np.array([_pairs[i][0] for i in _order], dtype=np.int32)
LENGTH = np.array([_pairs[i][1] for i in _order], dtype=np.int64)
USER = np.array([_LENGTHS.index(_pairs[i][1]) for i in _order])

TRAIN_STEPS, COMPARE = 30, 5


def _component(kind: str, name: str):
    return get_registry().get(kind, name).cls


def _assert_config_round_trip(cls, obj):
    config = obj.config
    assert isinstance(config, dict)
    assert json.loads(json.dumps(config)) == config, "config must survive JSON (it is saved in checkpoints)"
    return cls(**config)


class TestComponentContract:
    # ----- noise schedules -------------------------------------------------------------------
    @pytest.mark.parametrize("name", SCHEDULES)
    def test_schedule_betas(self, name):
        cls = _component("noise_schedule", name)
        schedule = cls()  # constructor arguments are the config, so every one has a default
        betas = schedule.betas()
        assert isinstance(betas, np.ndarray) and np.issubdtype(betas.dtype, np.floating)
        assert betas.shape == (schedule.config["steps"],)
        assert np.isfinite(betas).all() and (betas > 0).all() and (betas <= 1).all()
        alpha_bar = np.cumprod(1.0 - betas.astype(np.float64))
        assert (np.diff(alpha_bar) < 0).all(), "ᾱ_t must strictly decrease"
        np.testing.assert_array_equal(schedule.betas(), betas)  # deterministic
        np.testing.assert_array_equal(_assert_config_round_trip(cls, schedule).betas(), betas)

    @pytest.mark.parametrize("name", SCHEDULES)
    def test_schedule_forward_process_moments(self, name):
        betas = _component("noise_schedule", name)().betas()
        diffusion = GaussianDiffusion(betas)
        alpha_bar = np.cumprod(1.0 - betas.astype(np.float64))
        x0 = torch.tensor([0.0, 1.0, 0.5, 1.0, 0.0, 0.25], dtype=torch.float64)
        n = 20_000
        torch.manual_seed(0)
        for step in sorted({0, len(betas) // 2, len(betas) - 1}):
            t = torch.full((n,), step, dtype=torch.long)
            xt = diffusion.q_sample(x0.expand(n, -1), t)
            var = 1.0 - alpha_bar[step]
            mean_err = (xt.mean(0) - np.sqrt(alpha_bar[step]) * x0).abs().max().item()
            assert mean_err < 5 * np.sqrt(var / n) + 1e-12, f"step {step}: mean off by {mean_err}"
            np.testing.assert_allclose(xt.var(0).numpy(), var, rtol=5 * np.sqrt(2 / n), err_msg=f"step {step}")

    # ----- reweightings ----------------------------------------------------------------------
    @pytest.mark.parametrize("name", REWEIGHTINGS)
    def test_reweighting_weights(self, name):
        cls = _component("reweighting", name)
        strategy = cls()
        weights = strategy.weights(POSITION, LENGTH)
        assert isinstance(weights, np.ndarray) and weights.dtype == np.float32 and weights.shape == POSITION.shape
        assert np.isfinite(weights).all() and (weights > 0).all() and (weights <= 1).all(), \
            "weights are interaction strengths in (0, 1]"
        for user, length in enumerate(_LENGTHS):
            mine = USER == user
            newest = weights[mine & (POSITION == length - 1)]
            oldest = weights[mine & (POSITION == 0)]
            assert newest[0] >= oldest[0], f"user with {length} interactions: newest {newest} < oldest {oldest}"
        # element-wise in (position, length): the order entries arrive in does not matter
        perm = np.random.default_rng(1).permutation(len(POSITION))
        np.testing.assert_array_equal(strategy.weights(POSITION[perm], LENGTH[perm]), weights[perm])
        np.testing.assert_array_equal(_assert_config_round_trip(cls, strategy).weights(POSITION, LENGTH), weights)

    # ----- models ----------------------------------------------------------------------------
    @pytest.mark.parametrize("name", MODELS)
    def test_model_trains_and_round_trips(self, name, tmp_path):
        registry = get_registry()
        data = make_tiny()
        settings = dict(registry.get("model", name).cls.test_settings)
        torch.manual_seed(0)
        model, spec = build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)
        assert json.loads(json.dumps(spec.to_json())) == spec.to_json()

        rows = np.arange(data.n_users)
        users, x = torch.from_numpy(rows), dense_rows(data.train, rows)
        model.train()
        if model.closed_form:
            # closed-form models (the protocol's other branch) fit once; their weights must then carry signal
            model.fit_closed_form(data.train)
            assert any(bool(p.detach().abs().sum() > 0) for p in model.parameters()), "fit left every weight at 0"
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            losses = []
            for _ in range(TRAIN_STEPS):
                loss = model.loss(Batch(users, x))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            assert np.isfinite(losses).all()
            first, last = np.mean(losses[:COMPARE]), np.mean(losses[-COMPARE:])
            assert last < first, f"loss did not fall over {TRAIN_STEPS} steps: {first:.4g} -> {last:.4g}"

        model.eval()
        meta = CheckpointMeta(spec, DatasetRef(data.name, n_users=data.n_users, n_items=data.n_items))
        save_checkpoint(tmp_path, model, meta)
        loaded = load_checkpoint(tmp_path, registry).model
        before, after = model.state_dict(), loaded.state_dict()
        assert before.keys() == after.keys()
        for key in before:
            assert before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key
        torch.manual_seed(1)
        expected = model.scores(users, x)
        torch.manual_seed(1)
        got = loaded.scores(users, x)
        assert got.shape == (data.n_users, data.n_items)
        assert torch.equal(got, expected)
        # rebuilding from the recorded spec reproduces the spec itself
        _, again = build_model(registry, name, {}, n_users=data.n_users, n_items=data.n_items, spec=spec)
        assert again == spec

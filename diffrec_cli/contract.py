"""The contract every registered component meets, as checks a test suite can call.

``tests/test_contract.py`` runs them over every component diffrec finds (built-ins and installed plugins);
a plugin's own tests run them over its components with :func:`check_plugin` (``diffrec plugins new`` writes
such a test). Each check raises ``AssertionError`` naming what is broken. A model may declare small
settings for these checks as ``test_settings``; without them it is built with its defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffrec_cli.data.sparse import InteractionData, csr_from_pairs, dense_rows
from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.models.base import Batch
from diffrec_cli.models.build import build_model
from diffrec_cli.registry import Registry
from diffrec_cli.training.checkpoint import CheckpointMeta, DatasetRef, load_checkpoint, save_checkpoint

# Hand-made chronological positions: four users with 1, 2, 5 and 30 training interactions, entries in a
# scrambled order (as they sit in CSR rows, sorted by item rather than by time).
LENGTHS = [1, 2, 5, 30]
_rng = np.random.default_rng(7)
_pairs = [(p, n) for n in LENGTHS for p in range(n)]
_order = _rng.permutation(len(_pairs))
POSITION = np.array([_pairs[i][0] for i in _order], dtype=np.int32)
LENGTH = np.array([_pairs[i][1] for i in _order], dtype=np.int64)
USER = np.array([LENGTHS.index(_pairs[i][1]) for i in _order])

TRAIN_STEPS, COMPARE = 30, 5
CHECKED_KINDS = ("noise_schedule", "reweighting", "model")


def _require(condition: Any, message: str) -> None:
    if not condition:  # not `assert`: the checks must hold under python -O too
        raise AssertionError(message)


def tiny_dataset(name: str = "tiny", n_users: int = 40, n_items: int = 30, seed: int = 0) -> InteractionData:
    """Users prefer one of three item blocks; every user has items in all three splits."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        block = u % 3
        pool = np.arange(block * 10, block * 10 + 10) % n_items
        chosen = rng.choice(pool, size=8, replace=False)
        users += [u] * 8
        items += chosen.tolist()
    users_arr, items_arr = np.array(users), np.array(items)
    per_user = np.arange(len(users_arr)) % 8
    shape = (n_users, n_items)
    tr, va, te = per_user < 5, (per_user >= 5) & (per_user < 7), per_user == 7
    return InteractionData(
        name=name,
        train=csr_from_pairs(users_arr[tr], items_arr[tr], shape),
        valid=csr_from_pairs(users_arr[va], items_arr[va], shape),
        test=csr_from_pairs(users_arr[te], items_arr[te], shape),
        user_ids=np.array([f"u{i}" for i in range(n_users)]),
        item_ids=np.array([f"i{i}" for i in range(n_items)]),
        train_order=None,
    )


def config_round_trip(cls: type, obj: Any) -> Any:
    """``cls(**obj.config)``, after checking the config is a dict that survives JSON (checkpoints store it)."""
    config = obj.config
    _require(isinstance(config, dict), f"{cls.__name__}.config must be a dict")
    _require(json.loads(json.dumps(config)) == config, "config must survive JSON (it is saved in checkpoints)")
    return cls(**config)


def check_schedule(cls: type) -> None:
    """β₁..β_T: floats in (0, 1], one per step, ᾱ strictly decreasing, deterministic, rebuilt by its config."""
    schedule = cls()  # constructor arguments are the config, so every one has a default
    betas = schedule.betas()
    _require(isinstance(betas, np.ndarray) and np.issubdtype(betas.dtype, np.floating), "betas: a float array")
    _require(betas.shape == (schedule.config["steps"],), "one beta per step")
    _require(np.isfinite(betas).all() and (betas > 0).all() and (betas <= 1).all(), "betas lie in (0, 1]")
    alpha_bar = np.cumprod(1.0 - betas.astype(np.float64))
    _require((np.diff(alpha_bar) < 0).all(), "ᾱ_t must strictly decrease")
    np.testing.assert_array_equal(schedule.betas(), betas)  # deterministic
    np.testing.assert_array_equal(config_round_trip(cls, schedule).betas(), betas)


def check_schedule_moments(cls: type) -> None:
    """The forward process q(x_t | x_0) the schedule defines has the right mean and variance."""
    betas = cls().betas()
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
        _require(mean_err < 5 * np.sqrt(var / n) + 1e-12, f"step {step}: mean off by {mean_err}")
        np.testing.assert_allclose(xt.var(0).numpy(), var, rtol=5 * np.sqrt(2 / n), err_msg=f"step {step}")


def check_reweighting(cls: type) -> None:
    """float32 weights in (0, 1], element-wise in (position, length), the newest never below the oldest."""
    strategy = cls()
    weights = strategy.weights(POSITION, LENGTH)
    _require(isinstance(weights, np.ndarray) and weights.dtype == np.float32 and weights.shape == POSITION.shape,
             "weights: a float32 array, one per interaction")
    _require(np.isfinite(weights).all() and (weights > 0).all() and (weights <= 1).all(),
             "weights are interaction strengths in (0, 1]")
    for user, length in enumerate(LENGTHS):
        mine = USER == user
        newest = weights[mine & (POSITION == length - 1)]
        oldest = weights[mine & (POSITION == 0)]
        _require(newest[0] >= oldest[0], f"user with {length} interactions: newest {newest} < oldest {oldest}")
    # element-wise in (position, length): the order entries arrive in does not matter
    perm = np.random.default_rng(1).permutation(len(POSITION))
    np.testing.assert_array_equal(strategy.weights(POSITION[perm], LENGTH[perm]), weights[perm])
    np.testing.assert_array_equal(config_round_trip(cls, strategy).weights(POSITION, LENGTH), weights)


def check_model(registry: Registry, name: str, folder: str | Path) -> None:
    """The model builds from its ``test_settings``, learns (or fits), scores every item, and survives a
    checkpoint round trip (``folder``: an empty scratch folder) with identical weights and scores."""
    data = tiny_dataset()
    settings = dict(registry.get("model", name).cls.test_settings)
    torch.manual_seed(0)
    model, spec = build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)
    _require(json.loads(json.dumps(spec.to_json())) == spec.to_json(), "the model spec must survive JSON")
    rows = np.arange(data.n_users)
    users, x = torch.from_numpy(rows), dense_rows(data.train, rows)
    model.train()
    if model.closed_form:
        # closed-form models (the protocol's other branch) fit once; their weights must then carry signal
        model.fit_closed_form(data.train)
        _require(any(bool(p.detach().abs().sum() > 0) for p in model.parameters()), "fit left every weight at 0")
        _check_refit(registry, name, settings, data, model)
    else:
        _check_learning(model, users, x)
    model.eval()
    meta = CheckpointMeta(spec, DatasetRef(data.name, n_users=data.n_users, n_items=data.n_items))
    save_checkpoint(folder, model, meta)
    loaded = load_checkpoint(folder, registry).model
    before, after = model.state_dict(), loaded.state_dict()
    _require(before.keys() == after.keys(), "the reloaded model has other weights")
    for key in before:
        _require(before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key)
    torch.manual_seed(1)
    expected = model.scores(users, x)
    torch.manual_seed(1)
    got = loaded.scores(users, x)
    _require(got.shape == (data.n_users, data.n_items), "scores: one row per user, one column per item")
    _require(torch.equal(got, expected), "the reloaded model scores differently")
    # rebuilding from the recorded spec reproduces the spec itself
    _, again = build_model(registry, name, {}, n_users=data.n_users, n_items=data.n_items, spec=spec)
    _require(again == spec, "rebuilding from the recorded spec gives another spec")


def _check_refit(registry: Registry, name: str, settings: dict, data: Any, fitted: Any) -> None:
    """A model that declares ``refit_settings`` fits from ``factorise``'s factors to the weights
    ``fit_closed_form`` gives (``diffrec tune`` shares those factors across trials)."""
    if not fitted.refit_settings:
        return
    twin, _ = build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)
    twin.fit_from(twin.factorise(data.train))
    for (key, got), expected in zip(twin.state_dict().items(), fitted.state_dict().values()):
        _require(torch.allclose(got.float(), expected.float(), rtol=1e-4, atol=1e-5),
                 f"fit_from(factorise(...)) gives another {key} than fit_closed_form")


def _check_learning(model: Any, users: torch.Tensor, x: torch.Tensor) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(TRAIN_STEPS):
        loss = model.loss(Batch(users, x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    _require(np.isfinite(losses).all(), "the loss must stay finite")
    first, last = np.mean(losses[:COMPARE]), np.mean(losses[-COMPARE:])
    _require(last < first, f"loss did not fall over {TRAIN_STEPS} steps: {first:.4g} -> {last:.4g}")


def check_plugin(plugin: str, folder: str | Path) -> list[str]:
    """Every check over every component the installed plugin ``plugin`` registers (found through its entry
    point, as ``diffrec`` finds it); the components checked, as ``kind:name``. ``folder``: scratch space."""
    from diffrec_cli.plugins import load_plugins

    loaded = load_plugins()
    _require(plugin in loaded.registry.plugins, f"plugin {plugin!r} is not installed (problems: {loaded.problems})")
    checked = []
    for kind in CHECKED_KINDS:
        for name, entry in sorted(loaded.registry.entries[kind].items()):
            if entry.plugin != plugin:
                continue
            if kind == "noise_schedule":
                check_schedule(entry.cls)
                check_schedule_moments(entry.cls)
            elif kind == "reweighting":
                check_reweighting(entry.cls)
            else:
                scratch = Path(folder) / name
                scratch.mkdir(parents=True, exist_ok=True)
                check_model(loaded.registry, name, scratch)
            checked.append(f"{kind}:{name}")
    return checked

"""TopPop, RP3beta, SLIM and iALS on hand-checkable cases."""

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch

from diffrec_baselines.ials import IALS, ials_half_step, ials_objective
from diffrec_baselines.neighbourhood import RP3beta, rp3beta_weights
from diffrec_baselines.popularity import TopPop
from diffrec_baselines.slim import SLIM, elastic_net_slim
from diffrec_cli.errors import DiffrecError

# user 0: items 0, 1; user 1: items 1, 2
TWO_USERS = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))


def _random_matrix(n_users=40, n_items=10, density=0.35, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0
    return sp.csr_matrix(dense)


# ----- TopPop ------------------------------------------------------------------------------------------
def test_toppop_scores_every_user_by_item_counts_or_weights():
    model = TopPop(2, 3)
    model.fit_closed_form(TWO_USERS)
    expected = torch.tensor([[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]])
    torch.testing.assert_close(model.scores(torch.arange(2), torch.zeros(2, 3)), expected)
    weighted = TWO_USERS.copy()
    weighted.data = np.array([0.25, 1.0, 0.5, 1.0], dtype=np.float32)  # reweighted: sums of weights
    model.fit_closed_form(weighted)
    torch.testing.assert_close(model.popularity.data, torch.tensor([0.25, 1.5, 1.0]))


# ----- RP3beta -----------------------------------------------------------------------------------------
def test_rp3beta_walk_by_hand():
    # item→user: i0→u0 1; i1→u0 ½, u1 ½; i2→u1 1.  user→item: u0→i0,i1 ½ each; u1→i1,i2 ½ each.
    # W = P_iu P_ui = [[½, ½, 0], [¼, ½, ¼], [0, ½, ½]], diagonal zeroed
    np.testing.assert_allclose(rp3beta_weights(TWO_USERS, 1.0, 0.0), [[0, .5, 0], [.25, 0, .25], [0, .5, 0]])
    # β = 1 divides target columns by popularity [1, 2, 1]
    np.testing.assert_allclose(rp3beta_weights(TWO_USERS, 1.0, 1.0), [[0, .25, 0], [.25, 0, .25], [0, .25, 0]])
    # α = 2 squares every transition probability before the walk: row 1 = ¼·[¼, ¼, 0] + ¼·[0, ¼, ¼]
    np.testing.assert_allclose(rp3beta_weights(TWO_USERS, 2.0, 0.0),
                               [[0, .25, 0], [1 / 16, 0, 1 / 16], [0, .25, 0]])


def test_rp3beta_keeps_top_k_targets_per_source_and_normalises():
    train = _random_matrix()
    dense = rp3beta_weights(train, 0.7, 0.4)
    model = RP3beta(40, 10, k=3, alpha=0.7, beta=0.4)
    model.fit_closed_form(train)
    w = model.weight_matrix().numpy()
    for i in range(10):
        kept = np.flatnonzero(w[i])
        assert set(kept) == set(np.argsort(-dense[i], kind="stable")[:3]), f"item {i}"
        np.testing.assert_allclose(w[i, kept], dense[i, kept], rtol=1e-6)
    x = torch.from_numpy(train[:5].toarray())
    torch.testing.assert_close(model.scores(torch.arange(5), x), x @ torch.from_numpy(w))
    normalised = RP3beta(40, 10, k=3, alpha=0.7, beta=0.4, normalize=True)
    normalised.fit_closed_form(train)
    np.testing.assert_allclose(normalised.weight_matrix().numpy().sum(axis=1), 1.0, rtol=1e-6)


# ----- SLIM --------------------------------------------------------------------------------------------
def test_slim_two_items_closed_form():
    # G = XᵀX = [[3, 2], [2, 3]]; each column: w = max(0, (G_01 − λ₁)/(G_00 + λ₂))
    x = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    np.testing.assert_allclose(elastic_net_slim(x.T @ x, 0.5, 1.0, tol=1e-12, iterations=2000),
                               [[0, 0.375], [0.375, 0]], atol=1e-9)
    np.testing.assert_array_equal(elastic_net_slim(x.T @ x, 3.0, 1.0), np.zeros((2, 2)))  # λ₁ ≥ G_01: all zero


def _reference_column(x: np.ndarray, j: int, l1: float, l2: float) -> np.ndarray:
    """Column j by L-BFGS-B: with w ≥ 0 the L1 term is linear, so the objective is smooth."""
    others = np.arange(x.shape[1]) != j
    a, y = x[:, others], x[:, j]

    def objective(w):
        r = y - a @ w
        return 0.5 * r @ r + l1 * w.sum() + 0.5 * l2 * w @ w, -a.T @ r + l1 + l2 * w

    found = scipy.optimize.minimize(objective, np.zeros(others.sum()), jac=True, method="L-BFGS-B",
                                    bounds=[(0, None)] * int(others.sum()),
                                    options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    out = np.zeros(x.shape[1])
    out[others] = found.x
    return out


@pytest.mark.parametrize("l1,l2", [(0.5, 2.0), (2.0, 0.0), (0.0, 5.0)])
def test_slim_admm_matches_an_independent_solver(l1, l2):
    x = _random_matrix(n_users=50, n_items=8, density=0.3).toarray().astype(np.float64)
    got = elastic_net_slim(x.T @ x, l1, l2, iterations=5000, tol=1e-11)
    for j in range(8):
        np.testing.assert_allclose(got[:, j], _reference_column(x, j, l1, l2), atol=1e-6)
    assert (got >= 0).all() and (np.diag(got) == 0).all()


def test_slim_model_uses_scikit_learn_scaling_and_keeps_k():
    model = SLIM(4, 2, alpha=0.25, l1_ratio=0.5, k=1)
    assert model.penalties(4) == (0.5, 0.5)  # λ₁ = nαρ, λ₂ = nα(1 − ρ) with n = 4 users
    train = _random_matrix(n_users=50, n_items=8, density=0.3)
    model = SLIM(50, 8, alpha=0.02, l1_ratio=0.5, k=2, iterations=3000)
    model.fit_closed_form(train)
    w = model.weight_matrix().numpy()
    assert ((w != 0).sum(axis=0) <= 2).all()
    x = train.toarray().astype(np.float64)
    full = elastic_net_slim(x.T @ x, 0.5, 0.5, iterations=3000)
    for j in range(8):
        top = np.argsort(-full[:, j], kind="stable")[:2]
        top = top[full[top, j] > 0]
        np.testing.assert_allclose(w[top, j], full[top, j], rtol=1e-5)


# ----- iALS --------------------------------------------------------------------------------------------
def test_ials_half_step_one_factor_by_hand():
    # items v = [1, 2]; the user has item 0 with weight 1; α = 2, λ = 1:
    # (VᵀV + λ + α·1·v₀²) u = (1 + α)·v₀  →  (5 + 1 + 2) u = 3  →  u = 3/8
    v = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    u = ials_half_step(np.array([0]), np.array([0]), np.array([1.0]), v, torch.zeros(1, 1, dtype=torch.float64),
                       alpha=2.0, reg=1.0, cg_steps=1)
    torch.testing.assert_close(u, torch.tensor([[0.375]], dtype=torch.float64))


def test_ials_half_step_with_k_cg_steps_solves_the_normal_equations():
    train = _random_matrix(n_users=12, n_items=9, density=0.4, seed=2)
    train.data = np.random.default_rng(0).uniform(0.2, 1.0, train.nnz).astype(np.float32)  # reweighted
    coo = train.tocoo()
    k, alpha, reg = 4, 3.0, 0.5
    items = torch.from_numpy(np.random.default_rng(1).normal(size=(9, k)))
    got = ials_half_step(coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64), items,
                         torch.zeros(12, k, dtype=torch.float64), alpha, reg, cg_steps=k)
    x, v = train.toarray().astype(np.float64), items.numpy()
    for u in range(12):
        c = 1.0 + alpha * x[u]
        a = v.T @ (c[:, None] * v) + reg * np.eye(k)
        b = v.T @ (c * (x[u] > 0))
        np.testing.assert_allclose(got[u].numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_ials_exact_sweeps_never_raise_the_objective():
    train = _random_matrix(n_users=20, n_items=12, density=0.3, seed=4)
    coo = train.tocoo()
    rows, cols, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
    torch.manual_seed(0)
    u, v = torch.randn(20, 3, dtype=torch.float64) * 0.1, torch.randn(12, 3, dtype=torch.float64) * 0.1
    history = [ials_objective(train, u, v, 5.0, 0.1)]
    for _ in range(4):
        u = ials_half_step(rows, cols, vals, v, u, 5.0, 0.1, cg_steps=3)
        history.append(ials_objective(train, u, v, 5.0, 0.1))
        v = ials_half_step(cols, rows, vals, u, v, 5.0, 0.1, cg_steps=3)
        history.append(ials_objective(train, u, v, 5.0, 0.1))
    assert all(b <= a + 1e-9 for a, b in zip(history, history[1:])), history
    assert history[-1] < 0.5 * history[0]


def test_ials_model_scores_are_factor_products_and_seeded():
    train = _random_matrix(n_users=20, n_items=12, density=0.3, seed=4)
    torch.manual_seed(3)
    model = IALS(20, 12, factors=3, iterations=2)
    model.fit_closed_form(train)
    torch.testing.assert_close(model.scores(torch.tensor([2, 5]), torch.zeros(2, 12)),
                               model.user_factors[[2, 5]] @ model.item_factors.T)
    torch.manual_seed(3)
    again = IALS(20, 12, factors=3, iterations=2)
    again.fit_closed_form(train)
    assert torch.equal(again.item_factors, model.item_factors)


@pytest.mark.parametrize("cls,kwargs,word", [(RP3beta, {"k": 0}, "k"), (RP3beta, {"alpha": 0.0}, "alpha"),
                                             (RP3beta, {"beta": -1.0}, "beta"), (SLIM, {"alpha": 0.0}, "alpha"),
                                             (SLIM, {"l1_ratio": 1.5}, "l1_ratio"), (IALS, {"reg": 0.0}, "reg"),
                                             (IALS, {"factors": 0}, "factors")])
def test_bad_settings_are_one_line_errors(cls, kwargs, word):
    with pytest.raises(DiffrecError, match=word):
        cls(4, 3, **kwargs)

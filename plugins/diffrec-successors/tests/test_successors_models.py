"""GiffCF, BSPM and CF-Diff on hand-checkable cases."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from diffrec_cli.diffusion.schedules import LinearVarianceSchedule
from diffrec_cli.errors import DiffrecError
from diffrec_successors.bspm import BSPM, bspm_operator, integrate
from diffrec_successors.cfdiff import CFDiff
from diffrec_successors.giffcf import GiffCF
from diffrec_successors.graph import item_gram, normalized_interactions, top_eigenpairs

# user 0: items 0, 1; user 1: items 1, 2 -> user degrees [2, 2], item degrees [1, 2, 1]
TWO_USERS = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
A = 1 / math.sqrt(2)


# ----- graph helpers -----------------------------------------------------------------------------------
def test_normalized_interactions_by_hand():
    # D_U^(-1/2) R D_I^(-1/2): every entry / sqrt(2 · item degree)
    got = normalized_interactions(TWO_USERS, 0.5, 0.5).toarray()
    np.testing.assert_allclose(got, [[A, 0.5, 0], [0, 0.5, A]], rtol=1e-12)
    empty = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], dtype=np.float32))
    np.testing.assert_array_equal(normalized_interactions(empty, 0.5, 0.5).toarray(), [[1, 0, 0], [0, 0, 0]])


def test_top_eigenpairs_are_exact_descending_and_sign_fixed():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    sym = m @ m.T
    values, vectors = top_eigenpairs(sym, 3)
    reference = np.linalg.eigvalsh(sym)[::-1][:3]
    np.testing.assert_allclose(values, reference, rtol=1e-10)
    np.testing.assert_allclose(vectors @ sym, values[:, None] * vectors, atol=1e-9)
    assert (vectors[np.arange(3), np.abs(vectors).argmax(axis=1)] > 0).all()


# ----- GiffCF ------------------------------------------------------------------------------------------
def test_giffcf_graph_is_the_normalised_gram_over_its_top_eigenvalue():
    # R̃ = 2^(-1/4)·[[1, a, 0], [0, a, 1]], a = 1/√2 → R̃ᵀR̃ = 2^(-1/2)·M, M = [[1, a, 0], [a, 1, a], [0, a, 1]];
    # M's eigenvalues are 1 and 1 ± a√2 = {2, 1, 0}, so A = M / 2
    model = GiffCF(2, 3, embed_dim=4)
    model.prepare(TWO_USERS)
    expected = np.array([[1, A, 0], [A, 1, A], [0, A, 1]]) / 2
    np.testing.assert_allclose(model.graph.numpy(), expected, rtol=1e-6)


def test_giffcf_blur_is_linear_interpolation_towards_the_smoothed_signal():
    model = GiffCF(2, 3, embed_dim=4, steps=4, alpha=2.0)
    x, xa = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.25, 0.0]])
    # z_t = x + α·t/T·(xA − x) with α/T = 1/2: t = 1 → x + ½(xA − x)
    torch.testing.assert_close(model.blur(x, xa, 1), torch.tensor([[0.75, 0.125, 0.0]]))
    torch.testing.assert_close(model.blur(x, xa, torch.tensor([0])), x)
    torch.testing.assert_close(model.blur(x, xa, 4), torch.tensor([[0.0, 0.5, 0.0]]))


def test_giffcf_ideal_filter_blends_the_low_pass_projection():
    model = GiffCF(2, 3, embed_dim=4, ideal_weight=0.5, ideal_cutoff=1)
    model.prepare(TWO_USERS)
    model.eval()
    x = torch.tensor([[1.0, 0.0, 0.0]])
    v = model.ideal_basis  # (1, 3): the top eigenvector of M, (1/2, a, 1/2)
    torch.testing.assert_close(v, torch.tensor([[0.5, A, 0.5]]))
    expected = (x @ model.graph + 0.5 * (x @ v.T) @ v) / 1.5
    torch.testing.assert_close(model.smooth(x), expected)


def test_giffcf_reverse_process_returns_x_for_a_perfect_denoiser():
    model = GiffCF(2, 3, embed_dim=4, steps=3, noise_decay=0.5)
    model.prepare(TWO_USERS)
    model.eval()
    model.denoise = lambda z, c, c_smooth, t: c  # predicts the clean row exactly
    x = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    torch.testing.assert_close(model.scores(torch.arange(2), x), x)


def test_giffcf_reverse_step_carries_the_residual_by_hand():
    # T = 1, α = 1: z₁ = xA; a denoiser that always answers v gives z₀ = v + d·(z₁ − vA)
    model = GiffCF(2, 3, embed_dim=4, steps=1, alpha=1.0, noise_decay=0.25)
    model.prepare(TWO_USERS)
    model.eval()
    v = torch.tensor([[0.2, 0.3, 0.4]])
    model.denoise = lambda z, c, c_smooth, t: v
    x = torch.tensor([[1.0, 0.0, 0.0]])
    a = model.graph
    torch.testing.assert_close(model.scores(torch.arange(1), x), v + 0.25 * (x @ a - v @ a))


def test_giffcf_training_smoothing_is_the_same_sparse_or_dense():
    model = GiffCF(2, 40, embed_dim=4)
    model.graph.copy_(torch.randn(40, 40))
    x = torch.zeros(3, 40)
    x[0, 1], x[1, 5], x[2, 7] = 1.0, 0.5, 1.0
    model.train()
    sparse = model.smooth(x)
    model.eval()
    torch.testing.assert_close(sparse, model.smooth(x))


# ----- BSPM --------------------------------------------------------------------------------------------
def test_integrate_euler_and_rk4_by_hand():
    start = torch.tensor([1.0], dtype=torch.float64)
    # dy/dt = −y: one Euler step of h = 0.5 → 0.5; RK4 → the 4th-order Taylor polynomial of e^(−0.5)
    assert integrate(lambda y: -y, start, 0.5, 1, "euler")[-1].item() == 0.5
    h = -0.5
    taylor = 1 + h + h**2 / 2 + h**3 / 6 + h**4 / 24
    assert integrate(lambda y: -y, start, 0.5, 1, "rk4")[-1].item() == pytest.approx(taylor, rel=1e-15)
    assert len(integrate(lambda y: -y, start, 1.0, 3, "euler")) == 4


def _hand_gram():
    # R̃ = [[a, ½, 0], [0, ½, a]] → P̃ = R̃ᵀR̃
    r = np.array([[A, 0.5, 0], [0, 0.5, A]])
    return r.T @ r


def test_bspm_one_euler_step_each_by_hand():
    p = _hand_gram()
    np.testing.assert_allclose(item_gram(normalized_interactions(TWO_USERS, 0.5, 0.5)), p, rtol=1e-12)
    # blur: I + 1·(P̃ − I) = P̃; sharpen for T_s = 0.8: P̃ − 0.8·P̃²
    m = bspm_operator(TWO_USERS, factors=2, ideal_weight=0.0, blur_time=1.0, blur_steps=1, sharpen_time=0.8,
                      sharpen_steps=1, blur_solver="euler", sharpen_solver="euler", point_combination=False)
    np.testing.assert_allclose(m, p - 0.8 * p @ p, rtol=1e-12)
    # the mean of the states after each start: (P̃ + (P̃ − 0.8P̃²)) / 2
    m = bspm_operator(TWO_USERS, factors=2, ideal_weight=0.0, blur_time=1.0, blur_steps=1, sharpen_time=0.8,
                      sharpen_steps=1, blur_solver="euler", sharpen_solver="euler", point_combination=True)
    np.testing.assert_allclose(m, (2 * p - 0.8 * p @ p) / 2, rtol=1e-12)


def test_bspm_full_rank_ideal_filter_is_the_identity():
    # with every eigenvector kept V Vᵀ = I, so D^(−1/2) V Vᵀ D^(1/2) = I; no blurring, no sharpening
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float32))
    m = bspm_operator(x, factors=3, ideal_weight=0.3, blur_time=0.0, blur_steps=1, sharpen_time=0.0,
                      sharpen_steps=1, blur_solver="euler", sharpen_solver="rk4", point_combination=False)
    np.testing.assert_allclose(m, 1.3 * np.eye(3), atol=1e-12)


def test_bspm_model_scores_through_its_operator():
    model = BSPM(2, 3, factors=2, ideal_weight=0.0, sharpen_time=0.8, sharpen_solver="euler")
    model.fit_closed_form(TWO_USERS)
    p = _hand_gram()
    x = torch.tensor([[1.0, 0.0, 0.0]])
    expected = torch.from_numpy(np.array([[1.0, 0, 0]]) @ (p - 0.8 * p @ p)).float()
    torch.testing.assert_close(model.scores(torch.arange(1), x), expected)


# ----- CF-Diff -----------------------------------------------------------------------------------------
def _cfdiff(**kwargs):
    return CFDiff(2, 3, schedule=LinearVarianceSchedule(steps=5), hidden=4, d_model=4, heads=1, layers=1, **kwargs)


def test_cfdiff_hop_signals_by_hand():
    # S = D_I^(-1/2) RᵀR D_I^(-1/2) = [[1, a, 0], [a, 1, a], [0, a, 1]]; x = e₀ → xS = (1, a, 0),
    # xS² = (3/2, √2, 1/2), scaled to max 1
    model = _cfdiff()
    model.prepare(TWO_USERS)
    near, far = model.hop_signals(torch.tensor([[1.0, 0.0, 0.0]]))
    torch.testing.assert_close(near, torch.tensor([[1.0, A, 0.0]]))
    torch.testing.assert_close(far, torch.tensor([[1.0, math.sqrt(2) / 1.5, 0.5 / 1.5]]))


def test_cfdiff_denoiser_reads_the_hop_signals():
    torch.manual_seed(0)
    model = _cfdiff()
    model.eval()
    x_t, t = torch.rand(2, 3), torch.tensor([1, 3])
    hop = torch.rand(2, 3)
    base = model.denoiser(x_t, hop, hop, t)
    assert base.shape == (2, 3)
    assert not torch.allclose(base, model.denoiser(x_t, hop.flip(0), hop, t))
    assert not torch.allclose(base, model.denoiser(x_t, hop, hop.flip(0), t))


@pytest.mark.parametrize("cls,kwargs,word", [(GiffCF, {"steps": 0}, "steps"), (GiffCF, {"alpha": 0.0}, "alpha"),
                                             (GiffCF, {"dropout": 1.0}, "dropout"),
                                             (BSPM, {"sharpen_solver": "midpoint"}, "sharpen_solver"),
                                             (BSPM, {"factors": 0}, "factors")])
def test_bad_settings_are_one_line_errors(cls, kwargs, word):
    with pytest.raises(DiffrecError, match=word):
        cls(2, 3, **kwargs)


def test_cfdiff_bad_settings():
    with pytest.raises(DiffrecError, match="d_model"):
        CFDiff(2, 3, schedule=LinearVarianceSchedule(), d_model=5, heads=2)
    with pytest.raises(DiffrecError, match="noising_steps"):
        CFDiff(2, 3, schedule=LinearVarianceSchedule(steps=5), noising_steps=6)

"""DiffEASE: EASE at t = 0, the heat kernel is the matrix exponential, the denoiser's optimality conditions."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch

from diffrec_baselines.neighbourhood import ease_weights
from diffrec_cli.errors import DiffrecError
from diffrec_successors.diffease import DiffEASE, denoiser, diffease_operator, heat_kernel
from diffrec_successors.graph import item_gram, normalized_interactions

RNG = np.random.default_rng(3)
X = sp.csr_matrix((RNG.random((12, 6)) < 0.45).astype(np.float32))


def test_no_blur_no_prior_is_ease_on_the_binary_matrix():
    weighted = X.multiply(RNG.uniform(0.1, 1.0, X.shape)).tocsr()  # time weights must not reach the Gram
    got = diffease_operator(weighted, reg=2.0, blur_time=0.0, ideal_weight=0.0, factors=3, weighted_targets=False)
    gram = (X.T @ X).toarray().astype(np.float64)
    np.testing.assert_allclose(got, ease_weights(gram, 2.0), atol=1e-10)


def test_weighted_targets_solve_the_ridge_to_the_reweighted_rows():
    weighted = X.multiply(RNG.uniform(0.1, 1.0, X.shape)).tocsr()
    got = diffease_operator(weighted, reg=2.0, blur_time=0.0, ideal_weight=0.0, factors=3, weighted_targets=True)
    x, y = X.toarray().astype(np.float64), weighted.toarray().astype(np.float64)
    # each column j: ridge of y_j on the other items' binary columns, coefficient of j itself fixed at 0
    for j in range(6):
        others = [i for i in range(6) if i != j]
        a = x[:, others]
        coef = np.linalg.solve(a.T @ a + 2.0 * np.eye(5), a.T @ y[:, j])
        np.testing.assert_allclose(got[others, j], coef, atol=1e-9)
        assert got[j, j] == 0.0


def test_heat_kernel_is_the_matrix_exponential():
    p = item_gram(normalized_interactions(X, 0.5, 0.5))
    values, vectors = scipy.linalg.eigh(p)
    np.testing.assert_allclose(heat_kernel(values, vectors, 0.7), scipy.linalg.expm(0.7 * (p - np.eye(6))),
                               atol=1e-10)
    np.testing.assert_allclose(heat_kernel(values, vectors, 0.0), np.eye(6), atol=1e-10)


def test_denoiser_meets_its_optimality_conditions():
    # minimise ‖X − XHB‖² + λ‖B‖² s.t. diag B = 0: the gradient (HGH + λI)B − HG vanishes off the diagonal
    gram = (X.T @ X).toarray().astype(np.float64)
    p = item_gram(normalized_interactions(X, 0.5, 0.5))
    heat = scipy.linalg.expm(0.5 * (p - np.eye(6)))
    b = denoiser(gram, gram, heat, 1.5)
    np.testing.assert_allclose(np.diag(b), 0.0, atol=1e-12)
    gradient = (heat @ gram @ heat + 1.5 * np.eye(6)) @ b - heat @ gram
    np.testing.assert_allclose(gradient - np.diag(np.diag(gradient)), 0.0, atol=1e-10)


def test_operator_is_heat_then_denoiser_plus_full_rank_prior():
    p = item_gram(normalized_interactions(X, 0.5, 0.5))
    heat = scipy.linalg.expm(0.3 * (p - np.eye(6)))
    gram = (X.T @ X).toarray().astype(np.float64)
    # a full-rank ideal prior D^-1/2 V Vᵀ D^1/2 is the identity
    got = diffease_operator(X, reg=1.0, blur_time=0.3, ideal_weight=0.2, factors=6, weighted_targets=True)
    np.testing.assert_allclose(got, heat @ denoiser(gram, gram, heat, 1.0) + 0.2 * np.eye(6), atol=1e-9)


def test_model_scores_through_its_operator_and_checks_settings():
    model = DiffEASE(12, 6, reg=1.0, blur_time=0.3)
    model.fit_closed_form(X)
    x = torch.from_numpy(X[:2].toarray())
    np.testing.assert_allclose(model.scores(torch.arange(2), x).numpy(),
                               x.numpy() @ diffease_operator(X, reg=1.0, blur_time=0.3, ideal_weight=0.0,
                                                             factors=256, weighted_targets=True),
                               rtol=1e-5, atol=1e-6)
    for bad in ({"reg": 0.0}, {"blur_time": -1.0}, {"ideal_weight": -0.1}, {"factors": 0}):
        with pytest.raises(DiffrecError):
            DiffEASE(2, 3, **bad)

"""DiffEASE: a graph heat diffusion whose reverse step is EASE's closed-form denoiser (this project's design).

Forward process: a user's row x₀ is blurred by the heat equation on the item-item graph, dx/dt = x(P̃ − I),
to time t: x_t = x₀H_t with H_t = exp(t(P̃ − I)) (GiffCF's and BSPM's forward process; P̃ = R̃ᵀR̃ with
R̃ = D_U^(−1/2) R D_I^(−1/2) of the binary interactions, whose top eigenvalue is 1). Gaussian noise of
variance σ² on x_t, marginalised over, only adds n_users·σ² to the ridge below, so it is folded into
``reg``.

Reverse process: one large step, an x₀-predicting linear denoiser fitted in closed form on every training
pair: B = argmin ‖Y − X H_t B‖² + λ‖B‖² with diag(B) = 0 (an item never predicts itself from its own
blurred signal, as in EASE): with G = H_tXᵀXH_t + λI, P = G⁻¹, B = P·H_tXᵀY − P·diag(γ),
γ_j = (P·H_tXᵀY)_jj / P_jj. X is the binary matrix (the Gram matrix stays unweighted); the target x₀ rows
Y are, as in T-DiffRec, the reweighted rows the trainer hands over (``weighted_targets``; else Y = X), and
so are the rows a user is scored from. With t = 0 and binary targets this is exactly EASE with weighted
input rows. ``ideal_weight`` adds GiffCF's and BSPM's ideal low-pass prior x·D_I^(−1/2)VVᵀD_I^(1/2) (V:
the top ``factors`` eigenvectors of P̃) to the prediction. A user scores x·M with M = H_t B (+ the prior):
one n_items × n_items operator, stored in the checkpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Recommender, rows_times

from diffrec_successors.graph import item_gram, normalized_interactions


def heat_kernel(values: np.ndarray, vectors: np.ndarray, time: float) -> np.ndarray:
    """H_t = V diag(exp(t(λ − 1))) Vᵀ for the eigenpairs (columns of ``vectors``) of P̃."""
    return (vectors * np.exp(time * (values - 1.0))[None, :]) @ vectors.T


def denoiser(gram: np.ndarray, cross: np.ndarray, heat: np.ndarray, reg: float) -> np.ndarray:
    """The zero-diagonal ridge denoiser B from blurred rows XH to target rows Y, given G₀ = XᵀX and
    C = XᵀY: B = argmin ‖Y − XHB‖² + λ‖B‖² s.t. diag(B) = 0."""
    n = gram.shape[0]
    system = heat @ gram @ heat
    system[np.diag_indices(n)] += reg
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(torch.from_numpy(system))).numpy()
    weights = inverse @ (heat @ cross)
    weights -= inverse * (np.diag(weights) / np.diag(inverse))[None, :]
    return weights


def diffease_operator(train: sp.spmatrix, *, reg: float, blur_time: float, ideal_weight: float, factors: int,
                      weighted_targets: bool) -> np.ndarray:
    """M with score = x·M: the heat blur to ``blur_time`` then the one-step denoiser (+ the ideal prior)."""
    weighted = sp.csr_matrix(train, dtype=np.float64)
    binary = weighted.copy()
    binary.data[:] = 1.0
    gram = (binary.T @ binary).toarray()
    cross = (binary.T @ weighted).toarray() if weighted_targets else gram
    n = gram.shape[0]
    need_spectrum = blur_time > 0 or ideal_weight > 0
    if need_spectrum:
        values, vectors = scipy.linalg.eigh(item_gram(normalized_interactions(binary, 0.5, 0.5)))
    heat = heat_kernel(values, vectors, blur_time) if blur_time > 0 else np.eye(n)
    operator = heat @ denoiser(gram, cross, heat, reg)
    if ideal_weight > 0:
        top = vectors[:, -min(factors, n):]
        degree = np.asarray(binary.sum(axis=0)).ravel()
        inv_sqrt = np.where(degree > 0, degree ** -0.5, 0.0)
        sqrt = np.where(degree > 0, degree ** 0.5, 0.0)
        operator += ideal_weight * (inv_sqrt[:, None] * top) @ (top.T * sqrt[None, :])
    return operator


class DiffEASE(Recommender):
    """DiffEASE, closed form (fitted once, no epochs).

    reg: λ of the denoiser's ridge (with the folded-in forward noise); blur_time: t of the forward heat
    diffusion (0 gives EASE); ideal_weight, factors: weight and rank of the ideal low-pass prior;
    weighted_targets: the denoiser reconstructs the reweighted rows (T-DiffRec's x₀) instead of the binary ones.
    """

    name = "diffease"
    closed_form = True
    test_settings: ClassVar[dict[str, Any]] = {"reg": 10.0, "blur_time": 0.5, "factors": 8}
    # t > 0 only: the forward diffusion always runs (t = 0 would be EASE with weighted targets)
    search_space: ClassVar[dict[str, list]] = {"reg": [250.0, 500.0, 1000.0, 2000.0, 4000.0],
                                               "blur_time": [0.1, 0.25, 0.5, 1.0],
                                               "ideal_weight": [0.0, 0.05, 0.1, 0.2]}

    def __init__(self, n_users: int, n_items: int, *, reg: float = 1000.0, blur_time: float = 0.25,
                 ideal_weight: float = 0.0, factors: int = 256, weighted_targets: bool = True) -> None:
        super().__init__(n_users, n_items)
        for ok, message in ((reg > 0, f"reg (λ) must be positive, got {reg}"),
                            (blur_time >= 0, f"blur_time must be >= 0, got {blur_time}"),
                            (ideal_weight >= 0, f"ideal_weight must be >= 0, got {ideal_weight}"),
                            (factors >= 1, f"factors must be >= 1, got {factors}")):
            if not ok:
                raise DiffrecError(message)
        self.settings = dict(reg=reg, blur_time=blur_time, ideal_weight=ideal_weight, factors=factors,
                             weighted_targets=weighted_targets)
        self.operator = nn.Parameter(torch.zeros(n_items, n_items), requires_grad=False)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        self.operator.data.copy_(torch.from_numpy(diffease_operator(train, **self.settings)).float())

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rows_times(x, self.operator)

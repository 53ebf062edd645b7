"""BSPM: blurring-sharpening process models for collaborative filtering (Choi et al., SIGIR 2023).

A training-free diffusion: the user's row is first blurred by the heat equation on the item-item graph,
dx/dt = x(P̃ − I) for t ∈ [0, T_b], with P̃ = R̃ᵀR̃ and R̃ = D_U^(−1/2) R D_I^(−1/2) (GF-CF's graph), then
sharpened by the reversed equation dx/dt = −xP̃ for t ∈ [0, T_s], starting from the blurred signal plus
``ideal_weight`` times an ideal low-pass filter x·D_I^(−1/2) V Vᵀ D_I^(1/2) (V: the top ``factors``
eigenvectors of P̃). Every step of an explicit Euler or RK4 solver is linear in x, so the whole process is
one n_items × n_items matrix M: it is found by running the same torch ODE steps on the identity matrix
once (``fit_closed_form``), and a user then scores x·M, exactly what stepping x itself would give.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Recommender

from diffrec_successors.graph import item_gram, normalized_interactions, top_eigenpairs

SOLVERS = ("euler", "rk4")


def integrate(velocity: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, duration: float, steps: int,
              solver: str) -> list[torch.Tensor]:
    """Fixed-step explicit integration of the autonomous ODE dy/dt = velocity(y); all states y_0..y_K."""
    h = duration / steps
    states = [start]
    y = start
    for _ in range(steps):
        if solver == "euler":
            y = y + h * velocity(y)
        else:
            k1 = velocity(y)
            k2 = velocity(y + 0.5 * h * k1)
            k3 = velocity(y + 0.5 * h * k2)
            k4 = velocity(y + h * k3)
            y = y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(y)
    return states


def bspm_operator(train: sp.spmatrix, *, factors: int, ideal_weight: float, blur_time: float, blur_steps: int,
                  sharpen_time: float, sharpen_steps: int, blur_solver: str, sharpen_solver: str,
                  point_combination: bool) -> np.ndarray:
    """The (n_items, n_items) matrix M with score = x·M for the whole blurring-sharpening process."""
    normalized = normalized_interactions(train, 0.5, 0.5)
    gram = torch.from_numpy(item_gram(normalized))
    n = gram.shape[0]
    identity = torch.eye(n, dtype=torch.float64)
    blurred = integrate(lambda y: y @ gram - y, identity, blur_time, blur_steps, blur_solver)
    start = blurred[-1]
    if ideal_weight > 0:
        _, vectors = top_eigenpairs(gram.numpy(), factors)
        degree = np.asarray(sp.csr_matrix(train, dtype=np.float64).sum(axis=0)).ravel()
        inv_sqrt = np.where(degree > 0, degree ** -0.5, 0.0)
        sqrt = np.where(degree > 0, degree ** 0.5, 0.0)
        ideal = (inv_sqrt[:, None] * vectors.T) @ (vectors * sqrt[None, :])
        start = start + ideal_weight * torch.from_numpy(ideal)
    if sharpen_time > 0:
        sharpened = integrate(lambda y: -(y @ gram), start, sharpen_time, sharpen_steps, sharpen_solver)
    else:
        sharpened = [start]
    if point_combination:
        # the authors' "t-point combination": mean of every state after the start of each process
        return torch.stack(blurred[1:] + sharpened[1:]).mean(dim=0).numpy()
    return sharpened[-1].numpy()


class BSPM(Recommender):
    """BSPM, training-free (closed form). Defaults follow the authors' Gowalla/ML settings.

    blur_time, blur_steps, blur_solver: T_b, K_b and the solver of the blurring; sharpen_time,
    sharpen_steps, sharpen_solver: the same for sharpening (sharpen_time 0 turns it off); ideal_weight:
    β of the ideal low-pass filter added before sharpening; factors: its rank; point_combination: average
    the intermediate states instead of taking the last.
    """

    name = "bspm"
    closed_form = True
    test_settings: ClassVar[dict[str, Any]] = {"factors": 4}
    # the authors' reported ranges: T_s in [1, 5], K_s 1-2, β in [0, 0.5], factor dimensions up to 448
    search_space: ClassVar[dict[str, list]] = {"sharpen_time": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0],
                                               "sharpen_steps": [1, 2], "ideal_weight": [0.0, 0.1, 0.2, 0.3, 0.5],
                                               "factors": [64, 128, 256, 448], "blur_time": [0.5, 1.0]}

    def __init__(self, n_users: int, n_items: int, *, factors: int = 256, ideal_weight: float = 0.2,
                 blur_time: float = 1.0, blur_steps: int = 1, blur_solver: str = "euler",
                 sharpen_time: float = 2.5, sharpen_steps: int = 1, sharpen_solver: str = "rk4",
                 point_combination: bool = False) -> None:
        super().__init__(n_users, n_items)
        for ok, message in ((factors >= 1, f"factors must be >= 1, got {factors}"),
                            (ideal_weight >= 0, f"ideal_weight must be >= 0, got {ideal_weight}"),
                            (blur_time >= 0, f"blur_time must be >= 0, got {blur_time}"),
                            (sharpen_time >= 0, f"sharpen_time must be >= 0, got {sharpen_time}"),
                            (blur_steps >= 1 and sharpen_steps >= 1, "blur_steps and sharpen_steps must be >= 1"),
                            (blur_solver in SOLVERS, f"blur_solver must be euler or rk4, got {blur_solver!r}"),
                            (sharpen_solver in SOLVERS, f"sharpen_solver must be euler or rk4, got {sharpen_solver!r}")):
            if not ok:
                raise DiffrecError(message)
        self.settings = dict(factors=factors, ideal_weight=ideal_weight, blur_time=blur_time, blur_steps=blur_steps,
                             sharpen_time=sharpen_time, sharpen_steps=sharpen_steps, blur_solver=blur_solver,
                             sharpen_solver=sharpen_solver, point_combination=point_combination)
        self.operator = nn.Parameter(torch.zeros(n_items, n_items), requires_grad=False)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        self.operator.data.copy_(torch.from_numpy(bspm_operator(train, **self.settings)).float())

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ self.operator

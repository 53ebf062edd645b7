"""iALS: implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky, 2008).

    min_{U, V}  Σ_{u,i} c_ui (p_ui − u_u·v_i)² + λ (‖U‖² + ‖V‖²),   p_ui = [x_ui > 0],  c_ui = 1 + α·x_ui

over *all* user-item pairs. With a reweighting strategy x_ui is the interaction's weight in (0, 1], so
recent interactions earn more confidence. Each half-step solves one k×k system per user (per item):
(VᵀV + λI + Σ_{i∈u} α x_ui v_i v_iᵀ) u_u = Σ_{i∈u} (1 + α x_ui) v_i. The systems are solved by
conjugate gradients, warm-started from the previous factors, for all users at once: each CG iteration is a
gather and a scatter over the stored interactions, so the cost is O(nnz·k) and never k³ per user.
``cg_steps`` = k solves the systems exactly (CG's finite termination); the `implicit` package's default is 3.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.models.base import Recommender

from diffrec_baselines._common import check


def ials_half_step(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, fixed: torch.Tensor,
                   current: torch.Tensor, alpha: float, reg: float, cg_steps: int) -> torch.Tensor:
    """New factors for the side indexed by ``rows`` given the other side's ``fixed`` factors.

    ``rows``/``cols``/``values`` list the stored interactions (row on the solved side, col on the fixed
    side, weight x). Solves every row's normal equations with ``cg_steps`` CG iterations from ``current``.
    """
    dtype, device = fixed.dtype, fixed.device
    row_idx = torch.from_numpy(rows).to(device)
    partners = fixed[torch.from_numpy(cols).to(device)]  # (nnz, k)
    extra = alpha * torch.from_numpy(values).to(device=device, dtype=dtype)  # c − 1 per interaction
    gram = fixed.T @ fixed
    gram.diagonal().add_(reg)

    def apply(vectors: torch.Tensor) -> torch.Tensor:
        dots = (partners * vectors[row_idx]).sum(dim=1) * extra
        return vectors @ gram + torch.zeros_like(vectors).index_add_(0, row_idx, dots[:, None] * partners)

    rhs = torch.zeros_like(current).index_add_(0, row_idx, (1.0 + extra)[:, None] * partners)
    x = current.clone()
    residual = rhs - apply(x)
    direction = residual.clone()
    rs_old = (residual * residual).sum(dim=1)
    for _ in range(cg_steps):
        a_dir = apply(direction)
        denom = (direction * a_dir).sum(dim=1)
        step = torch.where(denom > 0, rs_old / denom.clamp(min=1e-30), torch.zeros_like(denom))
        x += step[:, None] * direction
        residual -= step[:, None] * a_dir
        rs_new = (residual * residual).sum(dim=1)
        ratio = torch.where(rs_old > 0, rs_new / rs_old.clamp(min=1e-30), torch.zeros_like(rs_old))
        direction = residual + ratio[:, None] * direction
        rs_old = rs_new
    return x


def ials_objective(train: sp.csr_matrix, users: torch.Tensor, items: torch.Tensor, alpha: float,
                   reg: float) -> float:
    """The full objective above (every pair, observed or not), for tests and diagnostics; dense, small data."""
    x = torch.from_numpy(train.toarray()).to(users.dtype)
    confidence, preference = 1.0 + alpha * x, (x > 0).to(users.dtype)
    fit = (confidence * (preference - users @ items.T) ** 2).sum()
    return float(fit + reg * (users.pow(2).sum() + items.pow(2).sum()))


class IALS(Recommender):
    """Implicit ALS. factors: k; alpha: confidence scale α; reg: λ; iterations: ALS sweeps (users then
    items); cg_steps: CG iterations per half-step. Fitted once by the trainer (closed_form: the sweeps run
    inside one "epoch"); scores are u_u · v_i from the stored factors.
    """

    name = "ials"
    closed_form = True
    test_settings: ClassVar[dict[str, Any]] = {"factors": 4, "iterations": 3}
    # Ferrari Dacrema et al.'s ranges: factors 1..200, α in [1e-3, 50], reg in [1e-5, 1e-2] (log); λ here
    # is unscaled (the `implicit` package's convention), so larger values are kept in the grid
    search_space: ClassVar[dict[str, list]] = {"factors": [32, 64, 128, 200], "alpha": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0],
                                               "reg": [1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]}

    def __init__(self, n_users: int, n_items: int, *, factors: int = 64, alpha: float = 10.0, reg: float = 1.0,
                 iterations: int = 15, cg_steps: int = 3, init_std: float = 0.01) -> None:
        super().__init__(n_users, n_items)
        check(factors >= 1, f"factors must be >= 1, got {factors}")
        check(alpha >= 0, f"alpha must be >= 0, got {alpha}")
        check(reg > 0, f"reg must be positive, got {reg}")
        check(iterations >= 1, f"iterations must be >= 1, got {iterations}")
        check(cg_steps >= 1, f"cg_steps must be >= 1, got {cg_steps}")
        check(init_std > 0, f"init_std must be positive, got {init_std}")
        self.alpha, self.reg, self.iterations, self.cg_steps = alpha, reg, iterations, cg_steps
        self.init_std = init_std
        self.user_factors = nn.Parameter(torch.zeros(n_users, factors), requires_grad=False)
        self.item_factors = nn.Parameter(torch.zeros(n_items, factors), requires_grad=False)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        coo = sp.coo_matrix(train)
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        values = coo.data.astype(np.float64)
        device = self.user_factors.device
        # float64 for the solves: CG's recurrences lose orthogonality quickly in float32
        u = torch.randn(self.user_factors.shape, dtype=torch.float64).to(device) * self.init_std
        v = torch.randn(self.item_factors.shape, dtype=torch.float64).to(device) * self.init_std
        for _ in range(self.iterations):
            u = ials_half_step(users, items, values, v, u, self.alpha, self.reg, self.cg_steps)
            v = ials_half_step(items, users, values, u, v, self.alpha, self.reg, self.cg_steps)
        self.user_factors.data.copy_(u.float())
        self.item_factors.data.copy_(v.float())

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users] @ self.item_factors.T

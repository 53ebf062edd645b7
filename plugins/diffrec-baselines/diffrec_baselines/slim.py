"""SLIM (Ning & Karypis, 2011) with the ElasticNet penalty, as tuned in Ferrari Dacrema et al.'s study.

For every target item j, a non-negative weight vector over the other items:

    min_w  1/(2n)·‖x_j − X w‖² + α·ρ·‖w‖₁ + ½·α·(1 − ρ)·‖w‖²   s.t. w ≥ 0, w_j = 0

(scikit-learn's ElasticNet scaling, n = number of users, α = ``alpha``, ρ = ``l1_ratio``), then the k
largest weights of each column kept. Why ADMM rather than per-item coordinate descent: all n_items problems
share the Gram matrix G = XᵀX, so the alternating direction method of multipliers (as in Steck et al.,
"ADMM SLIM", WSDM 2020) solves them together with one dense matrix product per iteration, where coordinate
descent would loop over items and coordinates in Python. Multiplying the objective by n gives the form
solved here: ½‖X − XB‖² + λ₁‖B‖₁ + ½λ₂‖B‖², λ₁ = nαρ, λ₂ = nα(1 − ρ).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from diffrec_baselines._common import check
from diffrec_baselines.neighbourhood import SparseItemItem


def elastic_net_slim(gram: np.ndarray, l1: float, l2: float, *, iterations: int = 200, tol: float = 1e-6,
                     rho: float | None = None) -> np.ndarray:
    """The non-negative, zero-diagonal B minimising ½‖X − XB‖² + l1·ΣB + ½·l2‖B‖², from G = XᵀX (ADMM).

    B-step: (G + (l2 + ρ)I) B = G + ρC − Γ with B_jj = 0 (a Lagrange term per column, EASE's trick);
    C-step: C = max(0, B + Γ/ρ − l1/ρ); Γ += ρ(B − C). Stops when ‖B − C‖ and the change of C fall under
    ``tol`` relative to ‖C‖, or after ``iterations``. Returns C (exactly sparse and non-negative), float64.
    """
    g = torch.from_numpy(np.asarray(gram, dtype=np.float64))
    n = g.shape[0]
    # ρ on the scale of the Gram diagonal balances the two blocks; the answer does not depend on it
    rho = float(rho if rho is not None else max(l2, float(g.diagonal().mean()), 1e-8))
    system = g.clone()
    system.diagonal().add_(l2 + rho)
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(system))
    inv_diag = inverse.diagonal().clone()
    p_gram = inverse @ g
    c = torch.zeros_like(g)
    dual = torch.zeros_like(g)
    for _ in range(iterations):
        b = p_gram + inverse @ (rho * c - dual)
        b -= inverse * (b.diagonal() / inv_diag)[None, :]
        c_new = (b + (dual - l1) / rho).clamp(min=0.0)
        c_new.diagonal().zero_()
        dual += rho * (b - c_new)
        scale = max(float(c_new.norm()), 1e-12)
        converged = float((b - c_new).norm()) <= tol * scale and float((c_new - c).norm()) <= tol * scale
        c = c_new
        if converged:
            break
    return c.numpy()


class SLIM(SparseItemItem):
    """SLIM ElasticNet: sparse non-negative item-item regression, k weights kept per target item.

    alpha: overall penalty strength α; l1_ratio: ρ, the L1 share; k: weights kept per item;
    iterations: ADMM iterations at most.
    """

    name = "slim"
    test_settings: ClassVar[dict[str, Any]] = {"k": 5, "alpha": 0.01}
    # Ferrari Dacrema et al.'s ranges: α in [1e-3, 1], l1_ratio in [1e-5, 1] (log), k up to 1000
    search_space: ClassVar[dict[str, list]] = {"alpha": [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0],
                                               "l1_ratio": [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0],
                                               "k": [100, 200, 500, 1000]}

    def __init__(self, n_users: int, n_items: int, *, alpha: float = 0.1, l1_ratio: float = 0.1, k: int = 200,
                 iterations: int = 200) -> None:
        super().__init__(n_users, n_items)
        check(alpha > 0, f"alpha must be positive, got {alpha}")
        check(0.0 <= l1_ratio <= 1.0, f"l1_ratio must lie in [0, 1], got {l1_ratio}")
        check(k >= 1, f"k must be >= 1, got {k}")
        check(iterations >= 1, f"iterations must be >= 1, got {iterations}")
        self.alpha, self.l1_ratio, self.iterations = alpha, l1_ratio, iterations
        self._init_sparse_weights(n_items, k)

    def penalties(self, n_rows: int) -> tuple[float, float]:
        """(λ₁, λ₂) of the unscaled objective for a matrix with ``n_rows`` users."""
        return n_rows * self.alpha * self.l1_ratio, n_rows * self.alpha * (1.0 - self.l1_ratio)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        x = sp.csr_matrix(train, dtype=np.float64)
        l1, l2 = self.penalties(x.shape[0])
        self.keep_top(elastic_net_slim((x.T @ x).toarray(), l1, l2, iterations=self.iterations))

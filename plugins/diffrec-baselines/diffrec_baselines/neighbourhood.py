"""Closed-form item-item models: EASE (Steck, 2019) and ItemKNN with cosine similarity.

Both are fitted once from the training matrix the trainer hands them (``closed_form = True``), which is
the reweighted matrix when a reweighting strategy is set, and score a user by ``x_u · W`` from the user's
(reweighted) row. Their weights are non-trainable parameters, so checkpoints, ``eval`` and ``recommend``
work as for any model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Recommender


def ease_weights(gram: np.ndarray, reg: float) -> np.ndarray:
    """EASE's closed form: P = (G + λI)⁻¹, B = I − P·diag(1/diag P), so diag(B) = 0 (float64 in, float64 out)."""
    g = np.array(gram, dtype=np.float64, copy=True)
    g[np.diag_indices_from(g)] += reg
    p = torch.cholesky_inverse(torch.linalg.cholesky(torch.from_numpy(g))).numpy()
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


class EASE(Recommender):
    """EASE: an item-item weight matrix B with a zero diagonal, min ‖X − XB‖² + λ‖B‖², in closed form.

    reg: λ, the L2 strength. The Gram matrix XᵀX comes from the sparse training matrix; B is dense
    (n_items × n_items), which suits catalogues up to tens of thousands of items.

    weight_gram: with a reweighting strategy (``reweighting=time-linear``, say), whether its weights enter
    the Gram matrix. True (the default): X is the reweighted matrix in both the fit and the scoring, so B
    solves the weighted regression. False: B is fitted on the unweighted interactions (XᵀX of the 0/1
    pattern of the input; an interaction a strategy weighs 0 is not in the input either way) and only the
    rows a user is scored from, x_u·B, carry the weights. Without a reweighting both are the same model.
    """

    name = "ease"
    closed_form = True
    test_settings: ClassVar[dict[str, Any]] = {"reg": 10.0}
    search_space: ClassVar[dict[str, list]] = {"reg": [50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0]}

    def __init__(self, n_users: int, n_items: int, *, reg: float = 250.0, weight_gram: bool = True) -> None:
        super().__init__(n_users, n_items)
        if not reg > 0:
            raise DiffrecError(f"reg (λ) must be positive, got {reg}")
        self.reg = reg
        self.weight_gram = weight_gram
        self.weight = nn.Parameter(torch.zeros(n_items, n_items), requires_grad=False)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        x = sp.csr_matrix(train, dtype=np.float64, copy=True)
        if not self.weight_gram:
            x.data[:] = 1.0  # the trainer hands the reweighted matrix; the Gram matrix takes its pattern only
        gram = (x.T @ x).toarray()
        self.weight.data.copy_(torch.from_numpy(ease_weights(gram, self.reg)).float())

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def cosine_topk(train: sp.csr_matrix, k: int, shrink: float = 0.0, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For every item j, its k most cosine-similar other items i and the similarities, shapes (n_items, k).

    sim(i, j) = x_i·x_j / (‖x_i‖‖x_j‖ + shrink) over item columns of the (possibly reweighted) matrix. The
    similarity matrix is computed ``chunk`` columns at a time, so memory stays at n_items × chunk.
    """
    x = sp.csc_matrix(train, dtype=np.float64)
    n_items = x.shape[1]
    k = min(k, n_items - 1)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    xt = x.T.tocsr()
    index = np.zeros((n_items, k), dtype=np.int64)
    value = np.zeros((n_items, k), dtype=np.float32)
    for lo in range(0, n_items, chunk):
        cols = np.arange(lo, min(n_items, lo + chunk))
        sim = (xt @ x[:, cols]).toarray()  # (n_items, len(cols))
        denom = norms[:, None] * norms[None, cols] + shrink
        sim = np.divide(sim, denom, out=np.zeros_like(sim), where=denom > 0)
        sim[cols, np.arange(len(cols))] = -np.inf  # an item is not its own neighbour
        top = torch.topk(torch.from_numpy(sim), k, dim=0)  # ties broken by torch, deterministically
        index[cols] = top.indices.T.numpy()
        value[cols] = np.maximum(top.values.T.numpy(), 0.0)
    return index, value


class SparseItemItem(Recommender):
    """A closed-form item-item model whose weights W are kept sparsely: ``kept`` entries per item.

    ``neighbours[r]`` holds the kept partners of item r and ``similarity[r]`` their weights. When
    ``rows_are_sources`` is False (ItemKNN, SLIM) r is the target: W[neighbours[r, n], r] = similarity[r, n];
    when True (RP3beta) r is the source: W[r, neighbours[r, n]]. A user scores x_u · W.
    """

    closed_form = True
    rows_are_sources: ClassVar[bool] = False

    def _init_sparse_weights(self, n_items: int, k: int) -> None:
        kept = max(1, min(k, n_items - 1))
        self.register_buffer("neighbours", torch.zeros(n_items, kept, dtype=torch.int64))
        self.similarity = nn.Parameter(torch.zeros(n_items, kept), requires_grad=False)

    def keep_top(self, weights: np.ndarray) -> None:
        """Store the ``kept`` largest entries of each target column (or source row) of a dense W."""
        w = torch.from_numpy(np.ascontiguousarray(weights if self.rows_are_sources else weights.T))
        top = torch.topk(w.float(), self.neighbours.shape[1], dim=1)
        self.neighbours.copy_(top.indices)
        self.similarity.data.copy_(top.values.clamp(min=0.0))

    def weight_matrix(self) -> torch.Tensor:
        """The dense (n_items, n_items) W from the kept entries."""
        n, kept = self.neighbours.shape
        w = torch.zeros(n, n, device=self.similarity.device, dtype=self.similarity.dtype)
        owners = torch.arange(n, device=w.device).repeat_interleave(kept)
        partners = self.neighbours.reshape(-1)
        if self.rows_are_sources:
            w[owners, partners] = self.similarity.reshape(-1)
        else:
            w[partners, owners] = self.similarity.reshape(-1)
        return w

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight_matrix()


class ItemKNN(SparseItemItem):
    """Item-based k-nearest neighbours: score(u, j) = Σ_{i ∈ N_k(j)} x_ui · sim(i, j), cosine similarity.

    k: neighbours kept per item; shrink: added to the cosine's denominator (damps pairs with little support).
    """

    name = "itemknn"
    test_settings: ClassVar[dict[str, Any]] = {"k": 5}
    search_space: ClassVar[dict[str, list]] = {"k": [10, 20, 50, 100, 200, 500], "shrink": [0.0, 10.0, 100.0]}

    def __init__(self, n_users: int, n_items: int, *, k: int = 100, shrink: float = 0.0) -> None:
        super().__init__(n_users, n_items)
        if k < 1:
            raise DiffrecError(f"k must be >= 1, got {k}")
        if shrink < 0:
            raise DiffrecError(f"shrink must be >= 0, got {shrink}")
        self.k, self.shrink = k, shrink
        self._init_sparse_weights(n_items, k)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        index, value = cosine_topk(train, self.neighbours.shape[1], self.shrink)
        self.neighbours.copy_(torch.from_numpy(index))
        self.similarity.data.copy_(torch.from_numpy(value))


def rp3beta_weights(train: sp.csr_matrix, alpha: float, beta: float, chunk: int = 2048) -> np.ndarray:
    """RP3beta's item-item matrix (Paudel et al., 2016): a two-step random walk item → user → item.

    P_iu = x_ui / Σ_u x_ui and P_uj = x_uj / Σ_j x_uj (row-stochastic walks over the possibly reweighted
    matrix), each entry raised to ``alpha``; W = P_iu^α P_uj^α, then column j divided by its popularity
    (Σ_u x_uj)^β so that popular targets are penalised, and the diagonal zeroed. Computed ``chunk`` source
    items at a time; returns the dense (n_items, n_items) W in float64.
    """
    x = sp.csr_matrix(train, dtype=np.float64)
    user_mass = np.asarray(x.sum(axis=1)).ravel()
    item_mass = np.asarray(x.sum(axis=0)).ravel()
    user_to_item = (sp.diags(_safe_inverse(user_mass)) @ x).tocsr()
    item_to_user = (sp.diags(_safe_inverse(item_mass)) @ x.T.tocsr()).tocsr()
    user_to_item.data **= alpha
    item_to_user.data **= alpha
    penalty = np.zeros_like(item_mass)
    penalty[item_mass > 0] = item_mass[item_mass > 0] ** -beta
    n_items = x.shape[1]
    w = np.zeros((n_items, n_items), dtype=np.float64)
    for lo in range(0, n_items, chunk):
        hi = min(n_items, lo + chunk)
        w[lo:hi] = (item_to_user[lo:hi] @ user_to_item).toarray() * penalty[None, :]
    np.fill_diagonal(w, 0.0)
    return w


def _safe_inverse(values: np.ndarray) -> np.ndarray:
    out = np.zeros_like(values)
    np.divide(1.0, values, out=out, where=values > 0)
    return out


class RP3beta(SparseItemItem):
    """RP3beta: random-walk item-item weights with a popularity penalty; top-k targets kept per item.

    alpha: exponent on the walk's transition probabilities; beta: popularity penalty exponent (0: plain
    P³α walk); k: targets kept per source item; normalize: rescale each kept row to sum to 1.
    """

    name = "rp3beta"
    rows_are_sources = True
    test_settings: ClassVar[dict[str, Any]] = {"k": 5}
    # the ranges of Ferrari Dacrema et al.'s evaluation study (alpha, beta in [0, 2], k up to 1000)
    search_space: ClassVar[dict[str, list]] = {"k": [50, 100, 200, 500, 1000],
                                               "alpha": [0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
                                               "beta": [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
                                               "normalize": [False, True]}

    def __init__(self, n_users: int, n_items: int, *, k: int = 200, alpha: float = 1.0, beta: float = 0.3,
                 normalize: bool = False) -> None:
        super().__init__(n_users, n_items)
        if k < 1:
            raise DiffrecError(f"k must be >= 1, got {k}")
        if not alpha > 0:
            raise DiffrecError(f"alpha must be positive, got {alpha}")
        if beta < 0:
            raise DiffrecError(f"beta must be >= 0, got {beta}")
        self.alpha, self.beta, self.normalize = alpha, beta, normalize
        self._init_sparse_weights(n_items, k)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        self.keep_top(rp3beta_weights(train, self.alpha, self.beta))
        if self.normalize:
            total = self.similarity.data.sum(dim=1, keepdim=True)
            self.similarity.data.copy_(torch.where(total > 0, self.similarity.data / total.clamp(min=1e-30), 0.0))

"""Closed-form item-item models: ItemKNN with cosine similarity and RP3beta (EASE is in ``ease.py``).

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
from diffrec_baselines.ease import EASE, ease_weights  # noqa: F401 - EASE lived here; old imports keep working

SIMILARITY_BLOCK = 2**25  # float32 similarities per ItemKNN block (128 MB)
WALK_BLOCK = 2**24  # float64 walk weights per RP3beta block (128 MB)


def cosine_topk(train: sp.csr_matrix, k: int, shrink: float = 0.0,
                chunk_entries: int = SIMILARITY_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """For every item j, its k most cosine-similar other items i and the similarities, shapes (n_items, k).

    sim(i, j) = x_i·x_j / (‖x_i‖‖x_j‖ + shrink) over item columns of the (possibly reweighted) matrix, in
    float32. Target columns are taken a block at a time (about ``chunk_entries`` similarities, 128 MB): each
    block comes from a sparse product, is ranked, and only its top k per column is kept, so no n_items²
    matrix ever exists and a catalogue of 100,000 items fits in a few hundred MB.
    """
    x = sp.csc_matrix(train, dtype=np.float32)
    n_items = x.shape[1]
    k = min(k, n_items - 1)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0), dtype=np.float32).ravel())
    xt = x.T.tocsr()
    index = np.zeros((n_items, k), dtype=np.int64)
    value = np.zeros((n_items, k), dtype=np.float32)
    chunk = max(1, min(n_items, chunk_entries // max(1, n_items)))
    for lo in range(0, n_items, chunk):
        cols = np.arange(lo, min(n_items, lo + chunk))
        sim = (xt @ x[:, cols]).toarray()  # (n_items, len(cols)) float32
        denom = norms[:, None] * norms[None, cols] + np.float32(shrink)
        np.divide(sim, denom, out=sim, where=denom > 0)
        sim[denom <= 0] = 0.0
        del denom
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
        self._transposed: tuple[tuple, torch.Tensor] | None = None  # (weights' versions, sparse Wᵀ)
        self._csr: tuple[tuple, sp.csr_matrix] | None = None  # (weights' versions, W as scipy CSR)

    def keep_top(self, weights: np.ndarray) -> None:
        """Store the ``kept`` largest entries of each target column (or source row) of a dense W."""
        w = torch.from_numpy(np.ascontiguousarray(weights if self.rows_are_sources else weights.T))
        top = torch.topk(w.float(), self.neighbours.shape[1], dim=1)
        self.neighbours.copy_(top.indices)
        self.similarity.data.copy_(top.values.clamp(min=0.0))

    def _entries(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sources, targets, weights) of the kept entries of W."""
        n, kept = self.neighbours.shape
        owners = torch.arange(n, device=self.neighbours.device).repeat_interleave(kept)
        partners = self.neighbours.reshape(-1)
        sources, targets = (owners, partners) if self.rows_are_sources else (partners, owners)
        return sources, targets, self.similarity.reshape(-1)

    def weight_matrix(self) -> torch.Tensor:
        """The dense (n_items, n_items) W from the kept entries (small catalogues and tests only)."""
        n = self.neighbours.shape[0]
        w = torch.zeros(n, n, device=self.similarity.device, dtype=self.similarity.dtype)
        sources, targets, weights = self._entries()
        w[sources, targets] = weights
        return w

    def transposed_weights(self) -> torch.Tensor:
        """Wᵀ as a coalesced sparse tensor (n_items × kept entries), built once per set of weights: loading or
        refitting the weights changes their version and rebuilds it."""
        key = (self.neighbours._version, self.similarity._version, self.similarity.device)
        if self._transposed is None or self._transposed[0] != key:
            sources, targets, weights = self._entries()
            n = self.neighbours.shape[0]
            coo = torch.sparse_coo_tensor(torch.stack([targets, sources]), weights.detach(), (n, n),
                                          check_invariants=False)  # indices come from range-checked buffers
            self._transposed = (key, coo.coalesce())
        return self._transposed[1]

    def csr_weights(self) -> sp.csr_matrix:
        """W as a scipy CSR matrix (float32), rebuilt only when the weights change (as ``transposed_weights``)."""
        key = (self.neighbours._version, self.similarity._version)
        if self._csr is None or self._csr[0] != key:
            sources, targets, weights = (t.detach().cpu().numpy() for t in self._entries())
            n = self.neighbours.shape[0]
            self._csr = (key, sp.csr_matrix((weights.astype(np.float32), (sources, targets)), shape=(n, n)))
        return self._csr[1]

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # a user row holds a few dozen items: sparse rows times sparse W costs (items of the user) × kept
            # per user; torch's COO product against the dense rows was ~100× slower at 95k items
            rows = sp.csr_matrix(x.to(torch.float32).numpy())
            return torch.from_numpy((rows @ self.csr_weights()).toarray()).to(self.similarity.dtype)
        # x·W = (Wᵀ·xᵀ)ᵀ through the sparse Wᵀ: n_items × kept work per user, never a dense n_items² W
        return torch.sparse.mm(self.transposed_weights(), x.T.to(self.similarity.dtype)).T.contiguous()


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

    def fit_memory(self, train_nnz: int, *, factorised: bool = False) -> int:
        """A float32 block of similarities with its denominators and ranking, sparse copies of X, the kept
        neighbours in numpy and the sparse Wᵀ scoring builds: no n_items² term."""
        return 3 * 4 * SIMILARITY_BLOCK + 3 * 12 * train_nnz + 32 * self.neighbours.numel()

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        index, value = cosine_topk(train, self.neighbours.shape[1], self.shrink)
        self.neighbours.copy_(torch.from_numpy(index))
        self.similarity.data.copy_(torch.from_numpy(value))


def _rp3beta_walk(train: sp.csr_matrix, alpha: float, beta: float) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """RP3beta's two walk matrices (item → user, user → item, entries raised to α) and target penalties."""
    x = sp.csr_matrix(train, dtype=np.float64)
    user_mass = np.asarray(x.sum(axis=1)).ravel()
    item_mass = np.asarray(x.sum(axis=0)).ravel()
    user_to_item = (sp.diags(_safe_inverse(user_mass)) @ x).tocsr()
    item_to_user = (sp.diags(_safe_inverse(item_mass)) @ x.T.tocsr()).tocsr()
    user_to_item.data **= alpha
    item_to_user.data **= alpha
    penalty = np.zeros_like(item_mass)
    penalty[item_mass > 0] = item_mass[item_mass > 0] ** -beta
    return item_to_user, user_to_item, penalty


def _rp3beta_rows(walk: tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray], lo: int, hi: int) -> np.ndarray:
    item_to_user, user_to_item, penalty = walk
    rows = (item_to_user[lo:hi] @ user_to_item).toarray() * penalty[None, :]
    rows[np.arange(hi - lo), np.arange(lo, hi)] = 0.0  # no self-loops
    return rows


def rp3beta_weights(train: sp.csr_matrix, alpha: float, beta: float, chunk: int = 2048) -> np.ndarray:
    """RP3beta's item-item matrix (Paudel et al., 2016): a two-step random walk item → user → item.

    P_iu = x_ui / Σ_u x_ui and P_uj = x_uj / Σ_j x_uj (row-stochastic walks over the possibly reweighted
    matrix), each entry raised to ``alpha``; W = P_iu^α P_uj^α, then column j divided by its popularity
    (Σ_u x_uj)^β so that popular targets are penalised, and the diagonal zeroed. The dense (n_items,
    n_items) W in float64, for small catalogues and tests: the model keeps only ``rp3beta_topk``.
    """
    walk = _rp3beta_walk(train, alpha, beta)
    n_items = train.shape[1]
    w = np.zeros((n_items, n_items), dtype=np.float64)
    for lo in range(0, n_items, chunk):
        w[lo:min(n_items, lo + chunk)] = _rp3beta_rows(walk, lo, min(n_items, lo + chunk))
    return w


def rp3beta_topk(train: sp.csr_matrix, alpha: float, beta: float, k: int,
                 chunk_entries: int = WALK_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """The k largest targets of every source row of RP3beta's W and their weights, (n_items, k) each: W is
    computed a block of source rows at a time (about ``chunk_entries`` float64 values) and only each row's
    top k is kept, so no n_items² matrix exists."""
    walk = _rp3beta_walk(train, alpha, beta)
    n_items = train.shape[1]
    index = np.zeros((n_items, k), dtype=np.int64)
    value = np.zeros((n_items, k), dtype=np.float32)
    chunk = max(1, min(n_items, chunk_entries // max(1, n_items)))
    for lo in range(0, n_items, chunk):
        hi = min(n_items, lo + chunk)
        top = torch.topk(torch.from_numpy(_rp3beta_rows(walk, lo, hi)), k, dim=1)
        index[lo:hi] = top.indices.numpy()
        value[lo:hi] = top.values.clamp(min=0.0).numpy()
    return index, value


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

    def fit_memory(self, train_nnz: int, *, factorised: bool = False) -> int:
        """A float64 block of walk rows and its ranking, the walk matrices, the kept targets and sparse Wᵀ."""
        return 3 * 8 * WALK_BLOCK + 5 * 12 * train_nnz + 32 * self.neighbours.numel()

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        index, value = rp3beta_topk(train, self.alpha, self.beta, self.neighbours.shape[1])
        self.neighbours.copy_(torch.from_numpy(index))
        self.similarity.data.copy_(torch.from_numpy(value))
        if self.normalize:
            total = self.similarity.data.sum(dim=1, keepdim=True)
            self.similarity.data.copy_(torch.where(total > 0, self.similarity.data / total.clamp(min=1e-30), 0.0))

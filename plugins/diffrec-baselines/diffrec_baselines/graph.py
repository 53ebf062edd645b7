"""MF with BPR loss and LightGCN (paper §4.1.2): embedding models trained on interaction triples.

Both expose ``item_embeddings()`` (for ``diffrec export-embeddings``: L-DiffRec clusters items on these).
The paper's "weight decay" for MF and LightGCN is ``reg``: an L2 penalty on the embeddings a batch uses,
as in LightGCN's own code (the trainer's ``weight_decay`` would decay every row at every step instead).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.errors import DiffrecError

from diffrec_baselines._common import LRS, check
from diffrec_baselines.pairwise import PairwiseRecommender, bpr_loss



class MF(PairwiseRecommender):
    """Matrix factorisation trained with BPR: score(u, i) = e_u · e_i.

    emb_size: embedding size; reg: L2 on the batch's embeddings; dropout: on the user embedding in training.
    """

    name = "mf"
    test_settings: ClassVar[dict[str, Any]] = {"emb_size": 8}
    # paper §4.1.3: lr, dropout and weight decay (here ``reg``)
    search_space: ClassVar[dict[str, list]] = {"lr": LRS, "dropout": [0.1, 0.2, 0.3, 0.4, 0.5],
                                               "reg": [1e-6, 1e-5, 1e-4]}

    def __init__(self, n_users: int, n_items: int, *, emb_size: int = 64, reg: float = 1e-4,
                 dropout: float = 0.0) -> None:
        super().__init__(n_users, n_items)
        check(emb_size > 0, f"emb_size must be positive, got {emb_size}")
        check(reg >= 0, f"reg must be >= 0, got {reg}")
        check(0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}")
        self.user_emb = nn.Embedding(n_users, emb_size)
        self.item_emb = nn.Embedding(n_items, emb_size)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        self.reg, self.dropout = reg, dropout

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_emb.weight, self.item_emb.weight

    def user_vectors(self, user_all: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """The batch's user embeddings as the loss sees them: MF's dropout acts here."""
        return F.dropout(user_all[users], self.dropout, self.training)

    def pair_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        user_all, item_all = self.final_embeddings()
        u = self.user_vectors(user_all, users)
        ranking = bpr_loss((u * item_all[pos]).sum(-1), (u * item_all[neg]).sum(-1))
        ego = self.user_emb(users).pow(2).sum() + self.item_emb(pos).pow(2).sum() + self.item_emb(neg).pow(2).sum()
        return ranking + self.reg * 0.5 * ego / len(users)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        user_all, item_all = self.final_embeddings()
        return user_all[users] @ item_all.T

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """(n_items, emb_size) item embeddings, as used for scoring."""
        return self.final_embeddings()[1].detach().clone()


def normalized_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 of the bipartite user-item graph, A = [[0, R], [Rᵀ, 0]], as a scipy CSR matrix."""
    n = n_users + n_items
    rows = np.concatenate([users, items + n_users])
    cols = np.concatenate([items + n_users, users])
    adj = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, n))
    adj.data[:] = 1.0  # a repeated pair is one edge
    degree = np.asarray(adj.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(degree), 0.0)
    scale = sp.diags(inv_sqrt)
    out = (scale @ adj @ scale).tocsr().astype(np.float32)
    out.sort_indices()
    return out


def to_torch_sparse(matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor on ``device``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse (CSR tensor support is in beta|invariant checks)")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), size=matrix.shape, device=device,
                                       check_invariants=False)


class _SymmetricSpMM(torch.autograd.Function):
    """Â·E for a symmetric sparse Â: the backward pass is Â·G, so no transposed copy is ever built."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adj @ grad


class LightGCN(MF):
    """LightGCN: embeddings propagated over the normalised user-item graph, layer outputs averaged.

    E⁽ˡ⁺¹⁾ = Â E⁽ˡ⁾ with Â = D^-1/2 A D^-1/2; final embeddings = mean of E⁽⁰⁾..E⁽ᴸ⁾. The training graph is
    kept as an edge list buffer, so a checkpoint scores without the dataset. dropout: edge dropout on Â in
    training (kept values rescaled by 1/(1 − p)).
    """

    name = "lightgcn"
    test_settings: ClassVar[dict[str, Any]] = {"emb_size": 8, "layers": 2}
    search_space: ClassVar[dict[str, list]] = {**MF.search_space, "layers": [1, 2, 3]}

    def __init__(self, n_users: int, n_items: int, *, emb_size: int = 64, layers: int = 2, reg: float = 1e-4,
                 dropout: float = 0.0) -> None:
        super().__init__(n_users, n_items, emb_size=emb_size, reg=reg, dropout=dropout)
        check(layers >= 0, f"layers must be >= 0, got {layers}")
        self.layers = layers
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)
        # (nnz, 2) training pairs (user, item); resized when a checkpoint is loaded
        self.register_buffer("edges", torch.zeros(0, 2, dtype=torch.int64))
        self._adj: torch.Tensor | None = None
        self._source: Any = None

    # ----- graph -------------------------------------------------------------------------------
    def set_graph(self, train: sp.csr_matrix) -> None:
        """Use the structure of ``train`` (values are ignored) as the propagation graph."""
        coo = train.tocoo()
        keep = coo.data != 0
        pairs = np.stack([coo.row[keep], coo.col[keep]], axis=1).astype(np.int64)
        self.edges = torch.from_numpy(pairs).to(self.user_emb.weight.device)
        self._adj, self._source = None, train

    def prepare(self, train: sp.csr_matrix) -> None:
        if self._source is not train:
            self.set_graph(train)

    def adjacency(self) -> torch.Tensor:
        device = self.user_emb.weight.device
        if self._adj is None or self._adj.device != device:
            edges = self.edges.cpu().numpy()
            self._adj = to_torch_sparse(normalized_adjacency(edges[:, 0], edges[:, 1], self.n_users, self.n_items),
                                        device)
        return self._adj

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "edges")
        if saved is not None:
            self.edges = torch.zeros_like(saved, device=self.edges.device)
            self._adj, self._source = None, None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _edge_dropout(self, adj: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropout == 0.0:
            return adj
        values = adj.values()
        keep = (torch.rand_like(values) >= self.dropout).to(values.dtype) / (1.0 - self.dropout)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse (CSR tensor support is in beta|invariant checks)")
            return torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(), values * keep, size=adj.shape,
                                           check_invariants=False)

    def propagate(self, adj: torch.Tensor) -> torch.Tensor:
        """Mean of the layer outputs E⁽⁰⁾..E⁽ᴸ⁾ for all users then all items, (n_users + n_items, d)."""
        layer = torch.cat([self.user_emb.weight, self.item_emb.weight])
        total = layer
        for _ in range(self.layers):
            layer = _SymmetricSpMM.apply(adj, layer)
            total = total + layer
        return total / (self.layers + 1)

    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.edges.shape[0] == 0:
            raise DiffrecError("LightGCN has no training graph yet: train it (or load a checkpoint) first")
        out = self.propagate(self._edge_dropout(self.adjacency()))
        return out[:self.n_users], out[self.n_users:]

    def loss(self, batch):
        if self.edges.shape[0] == 0 and batch.x.numel():
            # A custom loop feeding dense rows without ``batches``: the graph is the rows seen here.
            rows = batch.users.cpu().numpy()
            dense = sp.csr_matrix(batch.x.detach().cpu().numpy())
            self.set_graph(_scatter_rows(dense, rows, self.n_users))
        return super().loss(batch)

    def user_vectors(self, user_all: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        return user_all[users]  # LightGCN's dropout acts on the graph's edges instead


def _scatter_rows(rows_matrix: sp.csr_matrix, users: np.ndarray, n_users: int) -> sp.csr_matrix:
    """Place the rows of ``rows_matrix`` at user ids ``users`` in an (n_users, n_items) matrix."""
    coo = rows_matrix.tocoo()
    return sp.csr_matrix((coo.data, (users[coo.row], coo.col)), shape=(n_users, rows_matrix.shape[1]))

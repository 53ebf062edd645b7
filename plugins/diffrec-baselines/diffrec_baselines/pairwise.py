"""Pairwise (BPR) training: interaction batches with vectorised negative sampling.

A pairwise model trains on (user, positive item, negative item) triples. One epoch visits every training
interaction once, in a shuffled order, and pairs each with one item the user has not interacted with. The
negatives for a whole epoch are drawn at once: uniform item ids, checked against the training pairs by a
binary search over the sorted ``user * n_items + item`` keys, and only the collisions are redrawn (again
all at once), so there is no Python loop over interactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from diffrec_cli.models.base import Batch, Recommender

MAX_ROUNDS = 100  # redraw rounds; a user who has interacted with (nearly) every item may keep a positive


@dataclass
class PairBatch(Batch):
    """A batch of training triples. ``x`` is empty: pairwise models read ids, not interaction rows."""

    pos: torch.Tensor | None = None  # (B,) positive item ids
    neg: torch.Tensor | None = None  # (B,) sampled negative item ids


def pair_keys(train: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys ``user * n_items + item`` of the matrix's stored entries."""
    rows = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    keys = rows * train.shape[1] + train.indices.astype(np.int64)
    if not train.has_sorted_indices:
        keys.sort()
    return keys


def is_observed(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Whether each (user, item) pair is among the sorted ``keys`` (vectorised binary search)."""
    query = users.astype(np.int64) * n_items + items.astype(np.int64)
    at = np.searchsorted(keys, query)
    found = np.zeros(len(query), dtype=bool)
    inside = at < len(keys)
    found[inside] = keys[at[inside]] == query[inside]
    return found


def sample_negatives(keys: np.ndarray, users: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn unobserved item per entry of ``users``."""
    neg = rng.integers(0, n_items, len(users))
    todo = np.flatnonzero(is_observed(keys, users, neg, n_items))
    for _ in range(MAX_ROUNDS):
        if len(todo) == 0:
            break
        neg[todo] = rng.integers(0, n_items, len(todo))
        todo = todo[is_observed(keys, users[todo], neg[todo], n_items)]
    return neg


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean of −log σ(s_pos − s_neg); below ln 2 when positives score higher."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


class PairwiseRecommender(Recommender):
    """Base for BPR models: batches are interactions (``batch_size`` triples), not users.

    Subclasses implement ``pair_loss(users, pos, neg)``. ``loss`` also accepts a plain :class:`Batch` of
    dense interaction rows (a custom loop, the contract tests): it then draws one positive and one negative
    item per row from the row itself.
    """

    def steps_per_epoch(self, train: sp.csr_matrix, batch_size: int) -> int:
        return max(1, -(-int(train.nnz) // batch_size))

    def prepare(self, train: sp.csr_matrix) -> None:
        """Hook for models that need the whole training matrix (LightGCN's graph); called every epoch."""

    def batches(self, train: sp.csr_matrix, batch_size: int, generator: torch.Generator,
                device: torch.device) -> Iterator[Batch]:
        self.prepare(train)
        n_items = train.shape[1]
        users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
        items = train.indices.astype(np.int64)
        order = torch.randperm(len(users), generator=generator).numpy()
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        users, items = users[order], items[order]
        negs = sample_negatives(pair_keys(train), users, n_items, rng)
        empty = torch.empty(0, device=device)
        for lo in range(0, len(users), batch_size):
            sl = slice(lo, lo + batch_size)
            yield PairBatch(torch.from_numpy(users[sl]).to(device), empty,
                            torch.from_numpy(items[sl]).to(device), torch.from_numpy(negs[sl]).to(device))

    def loss(self, batch: Batch) -> torch.Tensor:
        if isinstance(batch, PairBatch) and batch.pos is not None:
            return self.pair_loss(batch.users, batch.pos, batch.neg)
        x = batch.x
        has = (x > 0).any(dim=1)
        if not bool(has.any()):
            raise ValueError("a pairwise model needs at least one row with an interaction")
        x, users = x[has], batch.users[has]
        pos = torch.multinomial((x > 0).float(), 1).squeeze(1)
        unseen = (x <= 0).float()
        unseen[unseen.sum(dim=1) == 0] = 1.0  # a row with every item: any item (degenerate, never in practice)
        neg = torch.multinomial(unseen, 1).squeeze(1)
        return self.pair_loss(users, pos, neg)

    def pair_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

"""TopPop: every user gets the catalogue ranked by training popularity (minus what they have seen).

The floor any personalised model must clear; with a reweighting strategy the popularity is the sum of the
interaction weights, so recent interactions count more (a "trending" list).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.models.base import Recommender


class TopPop(Recommender):
    """Most popular items first: score(u, j) = Σ_v x_vj, the same for every user. No settings."""

    name = "toppop"
    closed_form = True
    test_settings: ClassVar[dict[str, Any]] = {}
    search_space: ClassVar[dict[str, list]] = {}  # nothing to tune: one fit is the whole search

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__(n_users, n_items)
        self.popularity = nn.Parameter(torch.zeros(n_items), requires_grad=False)

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        counts = np.asarray(sp.csr_matrix(train, dtype=np.float64).sum(axis=0)).ravel()
        self.popularity.data.copy_(torch.from_numpy(counts).float())

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.popularity.to(x.dtype).expand(x.shape[0], -1).clone()

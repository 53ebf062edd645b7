"""The dataset object: train/valid/test as CSR matrices, densified one batch at a time, never whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from diffrec_cli.errors import DiffrecError

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "valid", "test")


@dataclass
class InteractionData:
    """Interactions of one prepared dataset, with dense ids 0..n−1 and the maps back to raw ids.

    ``train_order`` is aligned with ``train.data``: the 0-based chronological position of each training
    interaction within its user's history (temporal models and reweighting read it).
    ``interactions`` is the long table a recipe produced (a polars DataFrame: user, item, split, rating,
    time, position, noise), saved beside the CSR arrays; ``DataHome.load`` leaves it ``None`` (read it with
    ``DataHome.interactions``).
    """

    name: str
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_order: np.ndarray | None = None
    item_emb: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    interactions: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        shapes = {s: getattr(self, s).shape for s in SPLITS}
        if len(set(shapes.values())) != 1:
            raise DiffrecError(f"dataset {self.name!r}: splits disagree in shape: {shapes}")
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise DiffrecError(f"dataset {self.name!r}: id maps do not match the matrix shape")

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def split(self, name: str) -> sp.csr_matrix:
        if name not in SPLITS:
            raise DiffrecError(f"unknown split {name!r} (choose from {', '.join(SPLITS)})")
        return getattr(self, name)

    def counts(self) -> dict[str, Any]:
        n = {s: int(self.split(s).nnz) for s in SPLITS}
        total = sum(n.values())
        return {"users": self.n_users, "items": self.n_items, **n, "interactions": total,
                "density": total / max(1, self.n_users * self.n_items)}

    def fingerprint(self) -> str:
        """A short hash of the split contents: checkpoints refuse a dataset that has changed under them."""
        digest = hashlib.sha256()
        for s in SPLITS:
            m = self.split(s)
            for arr in (m.indptr, m.indices):
                digest.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def user_index(self, raw_id: Any) -> int:
        """Dense id of a raw user id (given as the user typed it, e.g. a string from the command line)."""
        lookup = self.meta.get("_user_lookup")
        if lookup is None:
            lookup = {str(u): i for i, u in enumerate(self.user_ids.tolist())}
            self.meta["_user_lookup"] = lookup
        try:
            return lookup[str(raw_id)]
        except KeyError:
            raise DiffrecError(f"unknown user id {raw_id!r} in dataset {self.name!r}") from None


def csr_from_pairs(users: np.ndarray, items: np.ndarray, shape: tuple[int, int],
                   values: np.ndarray | None = None) -> sp.csr_matrix:
    """Binary (or valued) CSR matrix from id pairs; a repeated pair keeps its first value."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    key = users * shape[1] + items
    _, first = np.unique(key, return_index=True)
    first.sort()
    vals = np.ones(len(first), dtype=np.float32) if values is None else np.asarray(values, dtype=np.float32)[first]
    m = sp.csr_matrix((vals, (users[first], items[first])), shape=shape, dtype=np.float32)
    m.sort_indices()
    return m


def row_positions(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position in ``rows``, column, offset into ``matrix.data``) of every nonzero of the selected rows,
    gathered from the CSR arrays without building a scipy sub-matrix."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    return np.repeat(np.arange(len(rows)), lengths), matrix.indices[offsets].astype(np.int64), offsets


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray, device: torch.device | str = "cpu",
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rows of a CSR matrix as a dense (len(rows), n_cols) tensor (float32 by default) built on ``device``."""
    import torch  # here: the data commands and the data home never need torch otherwise

    dtype = torch.float32 if dtype is None else dtype
    out = torch.zeros(len(rows), matrix.shape[1], dtype=dtype, device=device)
    row_of, cols, offsets = row_positions(matrix, rows)
    if len(offsets) == 0:
        return out
    vals = torch.from_numpy(matrix.data[offsets].astype(np.float32)).to(device=device, dtype=dtype)
    out[torch.from_numpy(row_of).to(device), torch.from_numpy(cols).to(device)] = vals
    return out

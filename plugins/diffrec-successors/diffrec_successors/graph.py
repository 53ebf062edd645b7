"""The item-item operators the successors diffuse over, and their leading eigenpairs.

All three models read the interaction matrix through R̃ = D_U^(−a) R D_I^(−b) (degrees are row and column
sums, so a reweighted matrix gives weighted degrees; users or items without interactions stay zero) and
the item-item matrix R̃ᵀR̃, dense: n_items × n_items is what the checkpoints store, so a reloaded model
needs no data. Eigenpairs come from LAPACK's symmetric solver (``scipy.linalg.eigh``), which is exact and
deterministic, with each vector's sign fixed, so a recomputation gives the same spectrum bit for bit on
the same machine.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp


def _power(values: np.ndarray, exponent: float) -> np.ndarray:
    out = np.zeros_like(values)
    positive = values > 0
    out[positive] = values[positive] ** exponent
    return out


def normalized_interactions(train: sp.spmatrix, user_power: float, item_power: float) -> sp.csr_matrix:
    """R̃ = D_U^(−user_power) R D_I^(−item_power) in float64 (zero degree → zero row/column)."""
    r = sp.csr_matrix(train, dtype=np.float64)
    user_degree = np.asarray(r.sum(axis=1)).ravel()
    item_degree = np.asarray(r.sum(axis=0)).ravel()
    return (sp.diags(_power(user_degree, -user_power)) @ r @ sp.diags(_power(item_degree, -item_power))).tocsr()


def item_gram(normalized: sp.csr_matrix) -> np.ndarray:
    """R̃ᵀR̃ as a dense float64 array (symmetric, positive semi-definite)."""
    return np.asarray((normalized.T @ normalized).toarray())


def top_eigenpairs(symmetric: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) and their unit eigenvectors as rows, shape (k, n).

    Each vector's sign is chosen so that its largest-magnitude entry is positive.
    """
    n = symmetric.shape[0]
    k = max(1, min(k, n))
    values, vectors = scipy.linalg.eigh(symmetric, subset_by_index=[n - k, n - 1])
    values, vectors = values[::-1].copy(), vectors[:, ::-1].T.copy()
    pivot = np.abs(vectors).argmax(axis=1)
    vectors *= np.sign(vectors[np.arange(k), pivot])[:, None]
    return values, vectors

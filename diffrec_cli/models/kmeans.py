"""Item clustering for L-DiffRec: seeded, vectorised k-means in torch, and SVD item factors to cluster on.

No clustering dependency: Lloyd's algorithm is a few tensor operations per iteration, k-means++ seeding
draws from a private ``torch.Generator`` (the global random state is never touched), and the result is
the same for the same input and seed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from diffrec_cli.errors import DiffrecError


def _sq_distances(x: torch.Tensor, centers: torch.Tensor, x_sq: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances (n, k), clamped at 0 against rounding."""
    return (x_sq[:, None] - 2.0 * x @ centers.T + (centers * centers).sum(1)[None, :]).clamp_(min=0.0)


def _plus_plus(x: torch.Tensor, k: int, x_sq: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next center drawn with probability proportional to D(x)²."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centers = x[first:first + 1].clone()
    closest = _sq_distances(x, centers, x_sq)[:, 0]
    for _ in range(1, k):
        # chosen points have D = 0, so with at least k distinct points (checked by the caller) every draw is new
        pick = int(torch.multinomial(closest / closest.sum(), 1, generator=generator))
        centers = torch.cat([centers, x[pick:pick + 1]])
        closest = torch.minimum(closest, _sq_distances(x, centers[-1:], x_sq)[:, 0])
    return centers


def _lloyd(x: torch.Tensor, centers: torch.Tensor, x_sq: torch.Tensor, iters: int,
           tol: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    k = centers.shape[0]
    labels = torch.full((x.shape[0],), -1, dtype=torch.long)
    for _ in range(iters):
        dist = _sq_distances(x, centers, x_sq)
        new_labels = dist.argmin(1)
        counts = torch.bincount(new_labels, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, new_labels, x)
        new_centers = sums / counts.clamp(min=1)[:, None].to(x.dtype)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            # An emptied cluster restarts at the points farthest from their current centers.
            far = dist.gather(1, new_labels[:, None])[:, 0].argsort(descending=True, stable=True)
            new_centers[empty] = x[far[:len(empty)]]
        shift = float(((new_centers - centers) ** 2).sum())
        settled = bool((new_labels == labels).all()) and len(empty) == 0
        centers, labels = new_centers, new_labels
        if settled or shift <= tol:
            break
    dist = _sq_distances(x, centers, x_sq)
    labels = dist.argmin(1)
    inertia = float(dist.gather(1, labels[:, None]).sum())
    return labels, centers, inertia


def kmeans(points: np.ndarray | torch.Tensor, k: int, *, seed: int = 0, n_init: int = 4, iters: int = 300,
           tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of ``points`` into ``k`` groups (euclidean k-means).

    k-means++ seeding, Lloyd iterations until the labels settle, ``n_init`` restarts keeping the lowest
    inertia. Labels are renumbered by first appearance (the cluster holding row 0 is cluster 0, and so
    on), so the result does not depend on how the restarts happened to number the clusters.
    Returns ``(labels (n,) int64, centers (k, d) float64)``; deterministic for a given ``seed``.
    """
    x = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DiffrecError(f"k-means needs a non-empty (n, d) array, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise DiffrecError("k-means input contains NaN or infinite values")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise DiffrecError(f"cannot make {k} clusters of {n} points")
    distinct = torch.unique(x, dim=0).shape[0]
    if distinct < k:
        raise DiffrecError(f"cannot make {k} clusters of {n} points: only {distinct} of them differ")
    x_sq = (x * x).sum(1)
    generator = torch.Generator().manual_seed(int(seed))
    best: tuple[torch.Tensor, torch.Tensor, float] | None = None
    for _ in range(max(1, n_init)):
        centers = _plus_plus(x, k, x_sq, generator)
        run = _lloyd(x, centers, x_sq, iters, tol)
        if best is None or run[2] < best[2]:
            best = run
    labels, centers, _ = best
    if torch.bincount(labels, minlength=k).min() == 0:  # Lloyd could not refill an emptied cluster
        raise DiffrecError(f"k-means left a cluster empty; use fewer than {k} clusters")
    # renumber clusters by first appearance
    first_row = torch.full((k,), n, dtype=torch.long).scatter_reduce_(0, labels, torch.arange(n), reduce="amin")
    order = torch.argsort(first_row, stable=True)
    rename = torch.empty_like(order)
    rename[order] = torch.arange(k)
    return rename[labels].numpy(), centers[order].numpy()


def svd_item_factors(train: sp.spmatrix, dim: int = 64, *, seed: int = 0, power_iters: int = 4,
                     oversample: int = 10) -> np.ndarray:
    """Item vectors from a truncated SVD of the (users × items) training matrix X ≈ U·S·Vᵀ: the rows of V·S,
    i.e. each item's column of X projected on the top ``dim`` singular directions.

    Randomised range finder with power iterations (Halko, Martinsson & Tropp 2011), seeded: the
    same matrix and seed give the same factors. Used when a dataset has no item embeddings to cluster.
    """
    matrix = sp.csr_matrix(train, dtype=np.float64)
    n_users, n_items = matrix.shape
    rank = max(1, min(dim, n_users, n_items))
    width = min(rank + oversample, n_users, n_items)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(matrix @ rng.standard_normal((n_items, width)))
    for _ in range(power_iters):
        q, _ = np.linalg.qr(matrix.T @ q)
        q, _ = np.linalg.qr(matrix @ q)
    small = np.asarray((matrix.T @ q).T)  # (width, n_items) = Qᵀ X
    _, s, vt = np.linalg.svd(small, full_matrices=False)
    factors = vt[:rank].T * s[:rank]
    if factors.shape[1] < dim:  # tiny matrices: pad so callers always get ``dim`` columns
        factors = np.pad(factors, ((0, 0), (0, dim - factors.shape[1])))
    return factors.astype(np.float32)

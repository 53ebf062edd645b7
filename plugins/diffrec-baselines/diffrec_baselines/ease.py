"""EASE (Steck, 2019): an item-item weight matrix B with a zero diagonal, in closed form.

B = I − P·diag(1/diag P) with P = (G + λI)⁻¹ and G = XᵀX, the Gram matrix of the (possibly reweighted)
training matrix X. Everything n_items² lives in one buffer, the model's own weight: G is written into it
row block by row block from the sparse X, factorised (Cholesky) and inverted back into it, and P turned
into B there too: one n_items² matrix (plus blocks of ``CHUNK`` × n_items), in the weight's precision. Beyond
``IN_PLACE_MAX_BYTES`` the factorisation goes through torch's LAPACK, whose calls each work on a copy: up to
three n_items² matrices.

With fewer users than items (``solves_dual``) the same B comes from the users' side instead (Woodbury):
P = (I − XᵀWX)/λ with W = (λI + XXᵀ)⁻¹, an n_users² inverse in float64 and sparse products by blocks of
items written straight into the weight: no n_items³ work (18,109 items, 8,517 users: 12 s against 24 s).

A search over λ shares one eigendecomposition G = VΛVᵀ instead (``factorise`` / ``fit_from``):
P(λ) = V·diag(1/(Λ + λ))·Vᵀ for every λ of the grid, written into the weight buffer by blocks of
eigenvectors, so the search holds V beside the weight (two n_items² matrices).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import torch
from scipy.linalg import blas
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Recommender, rows_times

CHUNK = 1024  # columns (or eigenvectors) per block: the only n_items-by-something temporaries


def ease_weights(gram: np.ndarray, reg: float) -> np.ndarray:
    """EASE's closed form from a dense Gram matrix, in float64 (a reference for tests and small cases)."""
    g = np.array(gram, dtype=np.float64, copy=True)
    g[np.diag_indices_from(g)] += reg
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


def gram_into(out: np.ndarray, x: sp.csr_matrix, chunk: int) -> np.ndarray:
    """Write XᵀX into the square array ``out`` by blocks of rows, each the sparse product of a block of X's
    columns with X, scattered into ``out``: the work follows the products Σ_u deg(u)², not nnz(X)·n_items
    (a dense block per step took 3.3 s on 18,109 items, this 0.4 s, the same values). A block of rows holds
    at most ``rows`` × n_items entries, 12 bytes each, so a quarter of ``chunk`` rows keeps it within the
    dense blocks ``fit_memory`` counts."""
    n = x.shape[1]
    xt = x.T.tocsr()
    rows = max(1, chunk // 4)
    for lo in range(0, n, rows):
        (xt[lo:lo + rows] @ x).toarray(out=out[lo:lo + rows])
    return out


# Tiles of the transposed copy: a tile and its mirror stay in cache (whole row blocks against column blocks
# walked the matrix at a stride of n_items floats: 2.0–4.1 s on 18,109 items against 0.35 s).
TILE = 256


def symmetrise_from_upper(a: np.ndarray, chunk: int = TILE) -> None:
    """Copy the upper triangle of the C-ordered square ``a`` onto its lower one, in place, tile by tile."""
    n = a.shape[0]
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        for left in range(0, lo, chunk):
            a[lo:hi, left:left + chunk] = a[left:left + chunk, lo:hi].T
        block = a[lo:hi, lo:hi]
        lower = np.tril_indices(hi - lo, -1)
        block[lower] = block.T[lower]


def _as_fortran(a: np.ndarray) -> np.ndarray:
    # the transpose of a C-ordered symmetric matrix is the same matrix in Fortran order: LAPACK works on it
    # in place, and its upper triangle is the C array's upper triangle seen from the other side
    if not a.flags.c_contiguous:
        raise DiffrecError("EASE works on a C-contiguous buffer")
    return a.T


def precision_into_b(p: np.ndarray) -> np.ndarray:
    """Turn the symmetric P (in ``p``) into B = I − P·diag(1/diag P) in place; returns ``p``."""
    diagonal = np.diag(p).copy()
    if not (diagonal > 0).all():
        raise DiffrecError("EASE's Gram matrix plus λ is not positive definite: use a larger reg")
    np.divide(p, -diagonal[None, :], out=p)
    np.fill_diagonal(p, 0.0)
    return p


# Largest buffer (bytes) LAPACK factorises in place through scipy: its bundled 32-bit-index OpenBLAS crashed
# the process in potrf at 28,000 and 34,341 items in float32 (3.1 and 4.7 GB), fine at 24,000 (2.3 GB). Below
# this the fit holds one n_items² matrix; above it torch's LAPACK, which works on copies, holds three.
IN_PLACE_MAX_BYTES = 1_600_000_000


def solves_in_place(n_items: int, itemsize: int) -> bool:
    """Whether ``solve_in_place`` factorises an n_items² matrix of ``itemsize`` bytes without a copy."""
    return n_items * n_items * itemsize <= IN_PLACE_MAX_BYTES


def solve_in_place(buffer: np.ndarray, reg: float, chunk: int) -> np.ndarray:
    """``buffer`` holds G; afterwards it holds B for λ = ``reg``: Cholesky, then the inverse from the factor."""
    buffer[np.diag_indices_from(buffer)] += reg
    invert_in_place(buffer, chunk)
    return precision_into_b(buffer)


def invert_in_place(buffer: np.ndarray, chunk: int) -> None:
    """The inverse of the symmetric positive definite matrix in ``buffer``, written over it."""
    if solves_in_place(len(buffer), buffer.itemsize):
        _invert_with_scipy(buffer, chunk)
    else:
        _invert_with_torch(buffer)
    if not np.isfinite(np.diag(buffer)).all():
        raise DiffrecError("EASE could not invert its Gram matrix: use a larger reg")


def _not_positive_definite(info: int) -> DiffrecError:
    return DiffrecError(f"EASE's Gram matrix plus λ is not positive definite (Cholesky info {info}): use a "
                        f"larger reg")


def _invert_with_scipy(buffer: np.ndarray, chunk: int) -> None:
    a = _as_fortran(buffer)
    potrf, potri = sla.lapack.get_lapack_funcs(("potrf", "potri"), (a,))
    factor, info = potrf(a, lower=1, overwrite_a=1, clean=0)
    if info != 0 or factor.ctypes.data != buffer.ctypes.data:
        raise _not_positive_definite(info)
    inverse, info = potri(factor, lower=1, overwrite_c=1)
    if info != 0 or inverse.ctypes.data != buffer.ctypes.data:
        raise DiffrecError(f"EASE could not invert its Gram matrix (potri info {info}): use a larger reg")
    symmetrise_from_upper(buffer, min(chunk, TILE))  # Fortran-lower of the transpose is the C array's upper triangle


def _invert_with_torch(buffer: np.ndarray) -> None:
    gram = torch.from_numpy(buffer)
    # both results written back into the buffer: each call then holds one working copy while it runs
    # (measured: 2 n² at the peak; a separate factor tensor made it 3 n²)
    info = torch.empty((), dtype=torch.int32)
    torch.linalg.cholesky_ex(gram, out=(gram, info))
    if int(info) != 0:
        raise _not_positive_definite(int(info))
    torch.cholesky_inverse(gram, out=gram)


# The users' side pays when users are at most this share of items: its inverse is n_users² in float64 (about
# 2·n_users³ float32-equivalent flops) plus sparse products, against n_items³ for the items' side. Measured on
# 8,517 users × 18,109 items (2 cores): 23–25 s per λ from the items' side, 12–13 s from the users' side.
DUAL_MAX_USERS_PER_ITEM = 0.75


# 1 − Q_jj = λ·P_jj cancels the digits Q_jj shares with 1: below this (λ tiny against the item's own Gram
# entry) float64 keeps too few of them, and the fit goes to the items' side, which solves or refuses.
DUAL_MIN_KEEP = 1e-9


class DualLostDigits(Exception):
    """The users'-side solve cannot give B to float32 accuracy at this λ."""


def solves_dual(n_users: int, n_items: int) -> bool:
    """Whether EASE solves from the users' side (``dual_into``) for a training matrix of this shape."""
    return n_users <= DUAL_MAX_USERS_PER_ITEM * n_items


def _torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch flags its CSR tensors as beta
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), size=matrix.shape)


def dual_into(out: np.ndarray, x: sp.csr_matrix, reg: float, chunk: int) -> np.ndarray:
    """B for λ = ``reg`` into the n_items² ``out``, from the users' side of the Woodbury identity.

    With W = (λI + XXᵀ)⁻¹ (n_users², float64) and Q = XᵀWX: P = (G + λI)⁻¹ = (I − Q)/λ, so B's off-diagonal
    entries are Q_ij / (1 − Q_jj): no n_items³ work, only W's inverse and two sparse products per block of
    items. Computed in float64 throughout (1 − Q_jj cancels digits that float32 would lose at small λ)."""
    n_users, n_items = x.shape
    x = x if x.dtype == np.float64 else sp.csr_matrix(x, dtype=np.float64)
    inverse = gram_into(np.empty((n_users, n_users)), sp.csr_matrix(x.T), chunk)  # XXᵀ
    inverse[np.diag_indices_from(inverse)] += reg
    invert_in_place(inverse, chunk)
    w, xt, columns = torch.from_numpy(inverse), _torch_csr(sp.csr_matrix(x.T)), x.tocsc()
    target = torch.from_numpy(out)
    for lo in range(0, n_items, chunk):
        hi = min(n_items, lo + chunk)
        wx = torch.sparse.mm(_torch_csr(sp.csr_matrix(columns[:, lo:hi].T)), w)  # (W·X_block)ᵀ, W symmetric
        q = torch.sparse.mm(xt, wx.t().contiguous())  # n_items × block: XᵀWX_block
        own = (torch.arange(lo, hi), torch.arange(hi - lo))
        keep = 1.0 - q[own]  # λ·P_jj
        if not (torch.isfinite(keep).all() and (keep > DUAL_MIN_KEEP).all()):
            raise DualLostDigits
        q /= keep[None, :]
        q[own] = 0.0
        target[:, lo:hi].copy_(q)  # torch's copy into the strided float32 block: 6× numpy's here
    return out


@dataclass
class GramSpectrum:
    """G = V·diag(values)·Vᵀ, shared by the fits of a λ grid (``values`` ascending, ``vectors`` columns)."""

    values: np.ndarray
    vectors: np.ndarray


def spectrum_in_place(buffer: np.ndarray) -> GramSpectrum:
    """The eigendecomposition of the G held in ``buffer`` (destroyed: it is LAPACK's workspace)."""
    values, vectors = sla.eigh(_as_fortran(buffer), overwrite_a=True, check_finite=False, driver="evr")
    return GramSpectrum(np.maximum(values, 0.0), vectors)  # G is positive semi-definite: no negative rounding


def b_from_spectrum(buffer: np.ndarray, spectrum: GramSpectrum, reg: float, chunk: int) -> np.ndarray:
    """B for λ = ``reg`` into ``buffer``: P = Σ_blocks (V_b·s_b)(V_b·s_b)ᵀ with s = (Λ + λ)^(-1/2)."""
    buffer[:] = 0.0
    c = _as_fortran(buffer)
    syrk = blas.get_blas_funcs("syrk", (c,))
    scale = (1.0 / np.sqrt(spectrum.values.astype(np.float64) + reg)).astype(buffer.dtype)
    for lo in range(0, len(scale), chunk):
        block = spectrum.vectors[:, lo:lo + chunk] * scale[None, lo:lo + chunk]
        c = syrk(1.0, block, beta=1.0, c=c, lower=1, overwrite_c=1)
    if c.ctypes.data != buffer.ctypes.data:
        raise DiffrecError("EASE's product was not written in place")
    symmetrise_from_upper(buffer, min(chunk, TILE))
    return precision_into_b(buffer)


class EASE(Recommender):
    """EASE: an item-item weight matrix B with a zero diagonal, min ‖X − XB‖² + λ‖B‖², in closed form.

    reg: λ, the L2 strength. The Gram matrix XᵀX comes from the sparse training matrix; B is dense
    (n_items × n_items), which suits catalogues up to tens of thousands of items: the fit needs up to
    two more n_items² float32 matrices (``fit_memory``), and a catalogue that cannot fit is refused before it starts.

    weight_gram: with a reweighting strategy (``reweighting=time-linear``, say), whether its weights enter
    the Gram matrix. True (the default): X is the reweighted matrix in both the fit and the scoring, so B
    solves the weighted regression. False: B is fitted on the unweighted interactions (XᵀX of the 0/1
    pattern of the input; an interaction a strategy weighs 0 is not in the input either way) and only the
    rows a user is scored from, x_u·B, carry the weights. Without a reweighting both are the same model.

    float64: solve in double precision (a second, float64 n_items² buffer). float32 gives the same top-20
    as float64 over the default λ grid on ML-1M and the demo data (``tests``); B is kept in float32 either way.
    """

    name = "ease"
    closed_form = True
    refit_settings = ("reg",)
    # Measured on a 2-core AVX-512 CPU (scipy's LAPACK, float32, 5,921 items, benchmarks/ease_scale.py
    # --solvers): the eigendecomposition took 533 s, a Cholesky solve 23.5 s and B(λ) from the spectrum
    # 7.5 s, so one spectrum pays from about 33 λ values on; shorter grids solve each λ alone (``diffrec
    # tune`` decides per group of trials).
    refit_break_even = 32
    test_settings: ClassVar[dict[str, Any]] = {"reg": 10.0}
    search_space: ClassVar[dict[str, list]] = {"reg": [50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0]}

    def __init__(self, n_users: int, n_items: int, *, reg: float = 250.0, weight_gram: bool = True,
                 float64: bool = False) -> None:
        super().__init__(n_users, n_items)
        if not reg > 0:
            raise DiffrecError(f"reg (λ) must be positive, got {reg}")
        self.reg, self.weight_gram, self.float64 = reg, weight_gram, float64
        self.weight = nn.Parameter(torch.zeros(n_items, n_items), requires_grad=False)

    def fit_memory(self, train_nnz: int, *, factorised: bool = False) -> int:
        """Beyond the weight: from the users' side (``solves_dual``) their float64 n_users² inverse and its
        blocks; from the items' side a float64 buffer when asked for, the eigenvectors when ``factorised``;
        either way the blocks (X's columns, G's rows, a transposed block) and sparse copies of X."""
        sparse = 3 * 12 * train_nnz
        if solves_dual(self.n_users, self.n_items):
            sparse += 12 * train_nnz if factorised else 0  # a search keeps its X alive instead of a spectrum
            inverse = self.n_users ** 2 * 8
            copies = 0 if solves_in_place(self.n_users, 8) else 2  # as below: torch's LAPACK works on copies
            # per block of items: (W·X_block)ᵀ, its transpose, and XᵀWX_block, in float64; X as int64 CSR twice
            return (1 + copies) * inverse + 8 * CHUNK * (2 * self.n_users + self.n_items) + sparse + 2 * 16 * train_nnz
        itemsize = 8 if self.float64 else 4
        square = self.n_items ** 2 * itemsize
        # Above IN_PLACE_MAX_BYTES, Cholesky and its inverse each work on a copy of the buffer: measured
        # 12.4 GiB peak RSS at 34,341 items in float32 (weight 4.4 GiB), so two squares beside the weight.
        # The eigendecomposition holds the eigenvectors. In float64 the buffer itself is one more.
        copies = 1 if factorised else (0 if solves_in_place(self.n_items, itemsize) else 2)
        buffers = (copies + (1 if self.float64 else 0)) * square
        return buffers + itemsize * CHUNK * (self.n_users + 2 * self.n_items) + sparse

    def _inputs(self, train: sp.csr_matrix, dtype: type) -> sp.csr_matrix:
        """The X the solve reads: a copy of the training matrix, its pattern only without ``weight_gram``."""
        x = sp.csr_matrix(train, dtype=dtype, copy=True)
        if not self.weight_gram:
            x.data[:] = 1.0  # the trainer hands the reweighted matrix; the Gram matrix takes its pattern only
        return x

    def _gram(self, train: sp.csr_matrix) -> np.ndarray:
        """G in the buffer the solve works in: the weight itself in float32."""
        dtype = np.float64 if self.float64 else np.float32
        return gram_into(self._buffer(dtype), self._inputs(train, dtype), CHUNK)

    def _buffer(self, dtype: type) -> np.ndarray:
        """Where the n² work happens: the weight itself when it is a float32 CPU tensor, else a new array."""
        if dtype == np.float32 and self.weight.device.type == "cpu":
            return self.weight.data.numpy()
        return np.zeros((self.n_items,) * 2, dtype)

    def _keep(self, b: np.ndarray) -> None:
        if self.weight.device.type != "cpu" or b.ctypes.data != self.weight.data.data_ptr():
            self.weight.data.copy_(torch.from_numpy(b))

    @torch.no_grad()
    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        if solves_dual(*train.shape):  # float64 inside either way: B lands in the float32 weight directly
            try:
                self._keep(dual_into(self._buffer(np.float32), self._inputs(train, np.float64), self.reg, CHUNK))
                return
            except DualLostDigits:
                pass  # the items' side then solves, or says why it cannot
        self._keep(solve_in_place(self._gram(train), self.reg, CHUNK))

    def factorise(self, train: sp.csr_matrix) -> GramSpectrum | sp.csr_matrix:
        """What a grid over λ shares: the eigendecomposition of G, which does not depend on ``reg``; from
        the users' side nothing (a fit there costs less than any n_items² spectrum), so the matrix itself
        (each fit copies what it changes)."""
        if solves_dual(*train.shape):
            return train
        return spectrum_in_place(self._gram(train))

    @torch.no_grad()
    def fit_from(self, factors: GramSpectrum | sp.csr_matrix) -> None:
        if isinstance(factors, GramSpectrum):
            self._keep(b_from_spectrum(self._buffer(factors.vectors.dtype), factors, self.reg, CHUNK))
        else:
            self.fit_closed_form(factors)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rows_times(x, self.weight)

"""EASE (Steck, 2019): an item-item weight matrix B with a zero diagonal, in closed form.

B = I − P·diag(1/diag P) with P = (G + λI)⁻¹ and G = XᵀX, the Gram matrix of the (possibly reweighted)
training matrix X. Everything n_items² lives in one buffer, the model's own weight: G is written into it
column block by column block from the sparse X, factorised (Cholesky) and inverted back into it, and P turned
into B there too: one n_items² matrix (plus blocks of n_items × ``CHUNK``), in the weight's precision. Beyond
``IN_PLACE_MAX_BYTES`` the factorisation goes through torch's LAPACK, whose calls each work on a copy: up to
three n_items² matrices.

A search over λ shares one eigendecomposition G = VΛVᵀ instead (``factorise`` / ``fit_from``):
P(λ) = V·diag(1/(Λ + λ))·Vᵀ for every λ of the grid, written into the weight buffer by blocks of
eigenvectors, so the search holds V beside the weight (two n_items² matrices).
"""

from __future__ import annotations

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
    """Write XᵀX into the square array ``out`` block by block: the temporaries are a dense block of X's
    columns and the block of G it gives (sparse-times-dense: no sparse product of unknown size)."""
    n = x.shape[1]
    xt = x.T.tocsr()
    xc = x.tocsc()
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        out[:, lo:hi] = xt @ xc[:, lo:hi].toarray()
    return out


def symmetrise_from_upper(a: np.ndarray, chunk: int) -> None:
    """Copy the upper triangle of the C-ordered square ``a`` onto its lower one, in place, by row blocks."""
    for lo in range(0, a.shape[0], chunk):
        hi = min(a.shape[0], lo + chunk)
        a[lo:hi, :lo] = a[:lo, lo:hi].T
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
    if solves_in_place(len(buffer), buffer.itemsize):
        _invert_with_scipy(buffer, chunk)
    else:
        _invert_with_torch(buffer)
    if not np.isfinite(np.diag(buffer)).all():
        raise DiffrecError("EASE could not invert its Gram matrix: use a larger reg")
    return precision_into_b(buffer)


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
    symmetrise_from_upper(buffer, chunk)  # Fortran-lower of the transpose is the C array's upper triangle


def _invert_with_torch(buffer: np.ndarray) -> None:
    gram = torch.from_numpy(buffer)
    # both results written back into the buffer: each call then holds one working copy while it runs
    # (measured: 2 n² at the peak; a separate factor tensor made it 3 n²)
    info = torch.empty((), dtype=torch.int32)
    torch.linalg.cholesky_ex(gram, out=(gram, info))
    if int(info) != 0:
        raise _not_positive_definite(int(info))
    torch.cholesky_inverse(gram, out=gram)


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
    symmetrise_from_upper(buffer, chunk)
    return precision_into_b(buffer)


class EASE(Recommender):
    """EASE: an item-item weight matrix B with a zero diagonal, min ‖X − XB‖² + λ‖B‖², in closed form.

    reg: λ, the L2 strength. The Gram matrix XᵀX comes from the sparse training matrix; B is dense
    (n_items × n_items), which suits catalogues up to tens of thousands of items: the fit needs about
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
        """Beyond the weight: a float64 buffer when asked for, the eigenvectors when ``factorised``, the
        blocks (X's columns, G's columns, a transposed block) and three sparse copies of X."""
        itemsize = 8 if self.float64 else 4
        square = self.n_items ** 2 * itemsize
        # Above IN_PLACE_MAX_BYTES, Cholesky and its inverse each work on a copy of the buffer: measured
        # 12.4 GiB peak RSS at 34,341 items in float32 (weight 4.4 GiB), so two squares beside the weight.
        # The eigendecomposition holds the eigenvectors. In float64 the buffer itself is one more.
        copies = 1 if factorised else (0 if solves_in_place(self.n_items, itemsize) else 2)
        buffers = (copies + (1 if self.float64 else 0)) * square
        return buffers + itemsize * CHUNK * (self.n_users + 2 * self.n_items) + 3 * 12 * train_nnz

    def _gram(self, train: sp.csr_matrix) -> np.ndarray:
        """G in the buffer the solve works in: the weight itself in float32."""
        dtype = np.float64 if self.float64 else np.float32
        x = sp.csr_matrix(train, dtype=dtype, copy=True)
        if not self.weight_gram:
            x.data[:] = 1.0  # the trainer hands the reweighted matrix; the Gram matrix takes its pattern only
        return gram_into(self._buffer(dtype), x, CHUNK)

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
        self._keep(solve_in_place(self._gram(train), self.reg, CHUNK))

    def factorise(self, train: sp.csr_matrix) -> GramSpectrum:
        """The eigendecomposition of G, which does not depend on ``reg``: shared by a grid over λ."""
        return spectrum_in_place(self._gram(train))

    @torch.no_grad()
    def fit_from(self, factors: GramSpectrum) -> None:
        self._keep(b_from_spectrum(self._buffer(factors.vectors.dtype), factors, self.reg, CHUNK))

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return rows_times(x, self.weight)

"""Per-interaction reweighting strategies: turn a user's training interactions into input values.

A strategy gets, for each training interaction, its user's position in chronological order and returns a
value to put in the training matrix in place of 1. T-DiffRec's time-aware weights are one such strategy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Real

import numpy as np
import scipy.sparse as sp

from diffrec_cli.errors import DiffrecError


def checked_positions(position: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (position, length) arrays every strategy receives, checked: 1-D, one shape, 0 <= position < length."""
    position = np.asarray(position)
    length = np.asarray(length)
    if position.shape != length.shape or position.ndim != 1:
        raise DiffrecError(f"position and length must be 1-D arrays of one shape, got {position.shape} "
                           f"and {length.shape}")
    if len(position) and ((position < 0).any() or (position >= length).any()):
        raise DiffrecError("every position must lie in 0..length-1")
    return position, length


@dataclass(frozen=True)
class NoReweighting:
    """Every interaction counts 1 (the paper's binary x_u)."""

    name = "none"

    @property
    def config(self) -> dict:
        return asdict(self)

    def weights(self, position: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Weights for interactions at 0-based chronological ``position`` among ``length`` per user."""
        return np.ones(len(position), dtype=np.float32)


@dataclass(frozen=True)
class TimeLinearReweighting:
    """T-DiffRec's time-aware linear weights, paper §3.6 (the schedule under Eq. 16).

    For a user with M training interactions in chronological order, the m-th (1-based) gets
    w_m = w_min + (m − 1)/(M − 1)·(w_max − w_min): the oldest w_min, the newest w_max. A user with a single
    interaction gets w_max (the authors' code, through ``np.linspace(w_min, w_max, 1)``, gives w_min).
    """

    name = "time-linear"

    w_min: float = 0.1
    w_max: float = 1.0

    def __post_init__(self) -> None:
        for field_name in ("w_min", "w_max"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise DiffrecError(f"{field_name} must be a number, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        if not 0.0 <= self.w_min <= self.w_max <= 1.0 or self.w_max == 0.0:
            raise DiffrecError(f"need 0 <= w_min <= w_max <= 1 and w_max > 0, got w_min={self.w_min}, "
                               f"w_max={self.w_max}")

    @property
    def config(self) -> dict:
        return asdict(self)

    def weights(self, position: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Weights for interactions at 0-based chronological ``position`` among ``length`` per user."""
        position, length = checked_positions(position, length)
        span = np.maximum(length.astype(np.float64) - 1.0, 1.0)
        share = np.where(length > 1, position / span, 1.0)  # (m − 1)/(M − 1); a lone interaction is the newest
        return (self.w_min + share * (self.w_max - self.w_min)).astype(np.float32)


def reweighted_matrix(train: sp.csr_matrix, train_order: np.ndarray | None, strategy) -> sp.csr_matrix:
    """``train`` with each interaction's value from ``strategy`` (a ``protocols.Reweighting``), given its
    chronological position; ``train`` itself when the dataset has no order to weigh by."""
    if train_order is None:
        return train
    lengths = np.diff(train.indptr)
    matrix = train.copy()
    matrix.data = np.asarray(strategy.weights(np.asarray(train_order), np.repeat(lengths, lengths)),
                             dtype=np.float32)
    # a zero weight (w_min = 0) means "not in the input": pairwise models and graphs read stored entries as positives
    matrix.eliminate_zeros()
    return matrix

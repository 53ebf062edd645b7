"""Exponential time decay over a user's chronological interactions (a T-DiffRec-style reweighting).

An interaction's *age* is how many of the user's training interactions came after it: 0 for the newest,
length − 1 for the oldest. Its weight halves (above the floor ``w_min``) every ``half_life`` interactions:

    w = w_min + (w_max − w_min) · exp(−ln 2 · age / half_life)

so the newest interaction gets ``w_max`` and old ones tend to ``w_min``. The weights replace the 1s of the
user's training row, so recent behaviour counts more in what DiffRec reconstructs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real

import numpy as np

from diffrec_cli.data.reweighting import checked_positions
from diffrec_cli.errors import DiffrecError


def exp_decay_weights(position: np.ndarray, length: np.ndarray, w_min: float = 0.1, w_max: float = 1.0,
                      half_life: float = 10.0) -> np.ndarray:
    """w = w_min + (w_max − w_min)·exp(−ln2·age/half_life), age = length − 1 − position, as float32."""
    position = np.asarray(position, dtype=np.float64)
    length = np.asarray(length, dtype=np.float64)
    age = length - 1.0 - position
    return (w_min + (w_max - w_min) * np.exp(-math.log(2.0) * age / half_life)).astype(np.float32)


@dataclass(frozen=True)
class ExpDecayReweighting:
    """Newest interaction ``w_max``, halving towards ``w_min`` every ``half_life`` older interactions."""

    name = "exp-decay"

    w_min: float = 0.1
    w_max: float = 1.0
    half_life: float = 10.0

    def __post_init__(self) -> None:
        for field_name in ("w_min", "w_max", "half_life"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise DiffrecError(f"{field_name} must be a number, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        # Weights are interaction strengths: positive (an observed interaction never vanishes) and at most 1.
        if not 0.0 < self.w_min <= self.w_max <= 1.0:
            raise DiffrecError(f"need 0 < w_min <= w_max <= 1, got w_min={self.w_min}, w_max={self.w_max}")
        if not 0.0 < self.half_life < math.inf:
            raise DiffrecError(f"half_life must be a positive number of interactions, got {self.half_life}")

    @property
    def config(self) -> dict:
        return asdict(self)

    def weights(self, position: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Weights for interactions at 0-based chronological ``position`` among ``length`` per user."""
        position, length = checked_positions(position, length)
        return exp_decay_weights(position, length, self.w_min, self.w_max, self.half_life)

"""Per-interaction reweighting strategies: turn a user's training interactions into input values.

A strategy gets, for each training interaction, its user's position in chronological order and returns a
value to put in the training matrix in place of 1. T-DiffRec's time-aware weights are one such strategy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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

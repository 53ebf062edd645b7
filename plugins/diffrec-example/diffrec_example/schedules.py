"""The improved-DDPM cosine noise schedule (Nichol & Dhariwal, 2021), with a scale for DiffRec.

Why ``scale``: the cosine schedule was designed for images, where x_T should be (almost) pure noise, so its
ᾱ_T is ~0. DiffRec (Wang et al., SIGIR 2023) instead keeps the forward process far from pure noise: a
user's interaction vector is personal, and corrupting it completely leaves the denoiser nothing to
personalise from, which is why the paper's own schedule (Eq. 4) carries a small noise scale s. Multiplying
every β_t by ``scale`` keeps the cosine *shape* (how the noise is spread over the steps) while bounding the
total: 1 − ᾱ_T ≤ scale·Σ_t β_t. ``scale = 1`` is the published schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real

import numpy as np

from diffrec_cli.errors import DiffrecError


def cosine_betas(steps: int, offset: float = 0.008, max_beta: float = 0.999, scale: float = 1.0) -> np.ndarray:
    """β_1..β_T of the cosine schedule, Nichol & Dhariwal (2021), Eq. (17), times ``scale``.

    ᾱ(t) = f(t)/f(0) with f(t) = cos²(((t/T) + s)/(1 + s) · π/2), s = ``offset``; then
    β_t = min(1 − ᾱ(t)/ᾱ(t−1), ``max_beta``) for t = 1..T (the clipping avoids the singularity at
    t = T, where ᾱ(T) = 0). Finally every β_t is multiplied by ``scale`` ∈ (0, 1]. Index 0 is t = 1.
    """
    t = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((t + offset) / (1.0 + offset) * (math.pi / 2.0)) ** 2
    alpha_bar = f / f[0]
    betas = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    return scale * betas


@dataclass(frozen=True)
class CosineSchedule:
    """The improved-DDPM cosine schedule; ``scale`` < 1 shrinks the noise (see the module docstring)."""

    name = "cosine"

    steps: int = 40
    offset: float = 0.008
    max_beta: float = 0.999
    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, Real) or int(self.steps) != self.steps \
                or self.steps < 1:
            raise DiffrecError(f"steps must be a positive integer, got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))
        for field_name in ("offset", "max_beta", "scale"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise DiffrecError(f"{field_name} must be a number, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        if not 0.0 <= self.offset < math.inf:
            raise DiffrecError(f"offset must be a finite number >= 0, got {self.offset}")
        if not 0.0 < self.max_beta < 1.0:
            raise DiffrecError(f"max_beta must lie in (0, 1), got {self.max_beta}")
        if not 0.0 < self.scale <= 1.0:
            raise DiffrecError(f"scale must lie in (0, 1], got {self.scale}")

    @property
    def config(self) -> dict:
        return asdict(self)

    def betas(self) -> np.ndarray:
        return cosine_betas(self.steps, self.offset, self.max_beta, self.scale)


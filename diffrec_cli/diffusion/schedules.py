"""Noise schedules: pure functions producing β₁..β_T, and the small config objects that wrap them.

A schedule object's constructor arguments are its whole configuration (saved in checkpoints); ``betas()``
is deterministic in them. Index 0 of every array is the paper's step t = 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from diffrec_cli.errors import DiffrecError


def linear_variance_betas(
    steps: int, noise_scale: float, noise_min: float, noise_max: float, *, first_beta: float = 1e-5, max_beta: float = 0.999
) -> np.ndarray:
    """β_t for the paper's linear-variance schedule, Eq. (4).

    Eq. (4) fixes the *variance* of q(x_t|x_0): 1 − ᾱ_t = s·[α_min + (t−1)/(T−1)·(α_max − α_min)], t = 1..T.
    Since ᾱ_t = ∏ α_t', the per-step β_t = 1 − ᾱ_t/ᾱ_{t−1}, capped at ``max_beta``. Like the authors' code,
    β₁ is then fixed to a small constant (``first_beta``) so the first step barely corrupts x_0.
    A zero ``noise_scale`` means no noise at all (every β is 0), the authors' "no diffusion" ablation.
    """
    variance = noise_scale * np.linspace(noise_min, noise_max, steps, dtype=np.float64)
    if noise_scale == 0:
        return np.zeros(steps, dtype=np.float64)
    alpha_bar = 1.0 - variance
    betas = np.empty(steps, dtype=np.float64)
    betas[0] = 1.0 - alpha_bar[0]
    betas[1:] = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    if first_beta is not None:
        betas[0] = first_beta
    return betas


def linear_betas(steps: int, noise_scale: float, noise_min: float, noise_max: float, *, first_beta: float = 1e-5) -> np.ndarray:
    """β_t rising linearly from s·α_min to s·α_max (the DDPM-style schedule the authors also offer)."""
    if noise_scale == 0:
        return np.zeros(steps, dtype=np.float64)
    betas = noise_scale * np.linspace(noise_min, noise_max, steps, dtype=np.float64)
    if first_beta is not None:
        betas[0] = first_beta
    return betas


def check_steps(steps: object) -> None:
    """T must be a positive integer (a bool is not one)."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise DiffrecError(f"steps must be a positive integer, got {steps!r}")


class _Configured:
    @property
    def config(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _ScaledSchedule(_Configured):
    steps: int = 40
    noise_scale: float = 0.005
    noise_min: float = 0.005
    noise_max: float = 0.01
    first_beta: float = 1e-5

    def __post_init__(self) -> None:
        check_steps(self.steps)
        if not 0.0 <= self.noise_scale <= 1.0:
            raise DiffrecError(f"noise_scale must lie in [0, 1], got {self.noise_scale}")
        if not 0.0 < self.noise_min <= self.noise_max < 1.0:
            raise DiffrecError(
                f"need 0 < noise_min <= noise_max < 1, got noise_min={self.noise_min}, noise_max={self.noise_max}"
            )


@dataclass(frozen=True)
class LinearVarianceSchedule(_ScaledSchedule):
    """The paper's schedule, Eq. (4): linear in the variance 1 − ᾱ_t."""

    name = "linear-var"

    def betas(self) -> np.ndarray:
        return linear_variance_betas(self.steps, self.noise_scale, self.noise_min, self.noise_max, first_beta=self.first_beta)


@dataclass(frozen=True)
class LinearSchedule(_ScaledSchedule):
    """β_t linear in t between s·α_min and s·α_max."""

    name = "linear"

    def betas(self) -> np.ndarray:
        return linear_betas(self.steps, self.noise_scale, self.noise_min, self.noise_max, first_beta=self.first_beta)


def binomial_betas(steps: int, *, first_beta: float | None = 1e-5, scale: float = 1.0) -> np.ndarray:
    """β_t = 1/(T − t + 2) for t = 1..T: the binomial-diffusion schedule of Sohl-Dickstein et al. (2015,
    §2.4.1), the fourth schedule in the DiffRec authors' code.

    Each step erases the same share of what is left of x_0: the product telescopes to
    ᾱ_t = (T − t + 1)/(T + 1), a straight line from T/(T + 1) down to 1/(T + 1). Like the authors' code,
    β₁ is then fixed to ``first_beta`` (so ᾱ_t = (1 − β₁)(T − t + 1)/T for t ≥ 2). ``scale`` multiplies
    every β (after the fix), for a gentler total corruption; 1 is the published schedule.
    """
    t = np.arange(1, steps + 1, dtype=np.float64)
    betas = 1.0 / (steps - t + 2.0)
    if first_beta is not None:
        betas[0] = first_beta
    return scale * betas


@dataclass(frozen=True)
class BinomialSchedule(_Configured):
    """The binomial schedule, β_t = 1/(T − t + 2): ᾱ_t falls linearly in t (see ``binomial_betas``)."""

    name = "binomial"

    steps: int = 40
    first_beta: float = 1e-5
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_steps(self.steps)
        if not 0.0 < self.first_beta < 1.0:
            raise DiffrecError(f"first_beta must lie in (0, 1), got {self.first_beta}")
        if not 0.0 < self.scale <= 1.0:
            raise DiffrecError(f"scale must lie in (0, 1], got {self.scale}")

    def betas(self) -> np.ndarray:
        return binomial_betas(self.steps, first_beta=self.first_beta, scale=self.scale)

"""DiffRec (paper §3): Gaussian diffusion over a user's interaction vector with an MLP denoiser."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender
from diffrec_cli.models.denoiser import MLPDenoiser


class DiffRec(Recommender):
    """DiffRec. Defaults are the authors' ML-1M (clean) settings.

    schedule: a noise schedule component (default ``linear-var``, Eq. 4) giving β₁..β_T;
    prediction: "x0" or "eps"; step_weighting: Eq. (11)'s SNR weight; sampling: "uniform" or
    "importance" (Eq. 14); noising_steps: T' of Algorithm 2 (0 ≤ T' ≤ T); dims: hidden sizes of the
    denoiser's decoder side, mirrored for its encoder; emb_size: step-embedding size; dropout: on the input.
    """

    name = "diffrec"
    distributable = True
    components = {"schedule": ("noise_schedule", "linear-var")}
    # `diffrec tune`'s default space: the paper's §4.1.3 scopes (T' is tuned in {0, T/4, T/2} there, which
    # depends on T; the grid keeps T' = 0, the authors' released choice).
    search_space = {"lr": [1e-5, 1e-4, 1e-3, 1e-2], "dims": [[300], [200, 600], [1000]],
                    "steps": [2, 5, 10, 40, 50, 100], "noising_steps": [0],
                    "noise_scale": [0.0, 1e-5, 1e-4, 5e-3, 1e-2, 1e-1, 5e-1],
                    "noise_min": [5e-4, 1e-3, 5e-3], "noise_max": [5e-3, 1e-2, 2e-2]}

    def __init__(self, n_users: int, n_items: int, *, schedule: Any, dims: Sequence[int] = (200, 600),
                 emb_size: int = 10, dropout: float = 0.5, prediction: str = "x0", step_weighting: bool = True,
                 sampling: str = "importance", noising_steps: int = 0, history: int = 10,
                 normalize_input: bool = False) -> None:
        super().__init__(n_users, n_items)
        dims = tuple(int(d) for d in dims)
        if not dims or min(dims) <= 0:
            raise DiffrecError(f"dims must be a non-empty list of positive sizes, got {list(dims)}")
        if not 0.0 <= dropout < 1.0:
            raise DiffrecError(f"dropout must lie in [0, 1), got {dropout}")
        self.schedule = schedule
        self.diffusion = GaussianDiffusion(schedule.betas(), prediction=prediction, step_weighting=step_weighting,
                                           sampling=sampling, history=history)
        if not 0 <= noising_steps <= self.diffusion.steps:
            raise DiffrecError(f"noising_steps (T') must lie in 0..{self.diffusion.steps}, got {noising_steps}")
        self.denoiser = MLPDenoiser(n_items, dims, emb_size, dropout, normalize_input)
        self.noising_steps = noising_steps

    def diffusion_steps(self) -> int:
        return self.diffusion.steps

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.diffusion.training_losses(self.denoiser, batch.x).mean()

    def step_losses(self) -> list[float | None]:
        return self.diffusion.mean_loss_per_step()

    def set_precision(self, training: torch.dtype, scoring: torch.dtype) -> bool:
        self.denoiser.set_precision(training, scoring)
        return True

    def gemm_shapes(self, batch_size: int, *, scoring: bool = False) -> list[tuple[int, int, int]]:
        if scoring and self.diffusion.prediction == "x0" and self.denoiser.supports_fusion():
            return self.denoiser.folded_shapes(batch_size)  # the fused recursion's hidden-size GEMMs
        return super().gemm_shapes(batch_size, scoring=scoring)

    def can_fuse(self) -> bool:
        return self.diffusion.can_fuse(self.denoiser)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor, *, fused: bool | None = None) -> torch.Tensor:
        return self.diffusion.reverse(self.denoiser, x, self.noising_steps, fused=fused)

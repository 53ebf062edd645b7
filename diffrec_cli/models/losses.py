"""Loss pieces shared by the variational models (L-DiffRec here, MultiVAE in the baselines plugin)."""

from __future__ import annotations

import torch


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp logvar)) ‖ N(0, I)) per row, averaged over the batch."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)).mean()


def annealed_weight(cap: float, seen: int, steps: int) -> float:
    """KL annealing (Liang et al., 2018; the paper's γ): rises linearly by 1/steps per update up to ``cap``;
    ``steps`` = 0 means the cap from the start."""
    if steps == 0:
        return cap
    return min(cap, seen / steps)

"""What the trainer, evaluator and checkpoints expect of a model.

A model is an ``nn.Module`` whose constructor takes the dataset sizes (``data_args``) and then keyword
arguments that are its configuration. Component-valued arguments (a noise schedule, say) are named in
``components``: the registry builds them from settings and checkpoints record them by name and plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Batch:
    """One training batch: the users' (possibly reweighted) interaction rows, densified on the device."""

    users: torch.Tensor  # (B,) dense user ids
    x: torch.Tensor  # (B, n_items)


class Recommender(nn.Module):
    """Base class: subclasses implement ``loss`` (training) and ``scores`` (full ranking)."""

    name: ClassVar[str] = ""
    data_args: ClassVar[tuple[str, ...]] = ("n_users", "n_items")
    # constructor parameter -> (registry kind, default name), e.g. {"schedule": ("noise_schedule", "linear-var")}
    components: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.config: dict[str, Any] = {}

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scores for every item, (B, n_items), from the users' input rows ``x``; higher ranks first."""
        raise NotImplementedError

    def step_losses(self) -> list[float | None] | None:
        """Mean loss per diffusion step for progress displays; None for models without steps."""
        return None

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

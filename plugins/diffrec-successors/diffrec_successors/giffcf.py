"""GiffCF: graph signal diffusion for collaborative filtering (Zhu, Wang, Zhang & Xiong, SIGIR 2024).

The forward process is not Gaussian noise but heat-equation smoothing of the user's interaction signal
over the item-item graph: with the smoothing operator A (R̃ᵀR̃ for R̃ = D_U^(−1/4) R D_I^(−1/2), scaled
so its largest eigenvalue is 1, optionally blended with an ideal low-pass filter),

    z_t = x + α·(t/T)·(xA − x),   t = 0..T   (α > 1 over-smooths at t = T),

plus optional Gaussian noise σ_t = noise_scale·noise_decay^(T−t). The denoiser ("sharpener") predicts x
from z_t, the user's own row c (dropped out in training) and its smoothed version cA; inference starts
from z_T and walks back t = T..1, re-smoothing each prediction and carrying the denoiser's residual
forward with weight noise_decay^(t−s). The loss is the squared error summed over items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender

from diffrec_successors.graph import item_gram, normalized_interactions, top_eigenpairs


def sinusoid_table(dim: int, steps: int, max_wavelength: float = 10000.0) -> torch.Tensor:
    """(steps + 1, dim) sinusoidal embeddings of the integer steps 0..steps."""
    scales = max_wavelength ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = torch.arange(steps + 1, dtype=torch.float64)[:, None] * scales[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


class StepScalar(nn.Module):
    """A learned scalar per diffusion step: sinusoid(t) → 20 (swish) → 1."""

    def __init__(self, steps: int, width: int = 20) -> None:
        super().__init__()
        self.register_buffer("table", sinusoid_table(width, steps), persistent=False)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, 1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.hidden(self.table[t])))  # (B, 1)


class ChannelMixer(nn.Module):
    """The same tiny MLP (k inputs → 2, swish → 1) applied at every position of k stacked signals."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(inputs, 2)
        self.out = nn.Linear(2, 1)

    def forward(self, *signals: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack(torch.broadcast_tensors(*signals), dim=-1)
        return self.out(F.silu(self.hidden(stacked))).squeeze(-1)


def _glorot(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class GiffCF(Recommender):
    """GiffCF. Defaults are the authors' ML-1M settings (T = 3, α = 1.5, no noise, noise_decay 0.5).

    steps: T; alpha: smoothing strength α; embed_dim: item-embedding size of the denoiser; dropout: on the
    condition c in training; noise_scale, noise_decay: Gaussian noise σ_t and the residual carry in
    inference; ideal_weight, ideal_cutoff: blend of an ideal low-pass filter (projection on the top
    ``ideal_cutoff`` eigenvectors of R̃ᵀR̃) into the smoothing, 0 = off.
    """

    name = "giffcf"
    distributable = True
    test_settings: ClassVar[dict[str, Any]] = {"embed_dim": 8, "steps": 2, "ideal_cutoff": 4}
    # around the authors' released configurations (T 3, α 1.5, ideal 0 / 0.2, noise_decay 0.5)
    search_space: ClassVar[dict[str, list]] = {"steps": [2, 3, 4, 5], "alpha": [1.0, 1.5, 2.0, 2.5],
                                               "ideal_weight": [0.0, 0.1, 0.2, 0.3],
                                               "noise_decay": [0.0, 0.25, 0.5, 0.75, 1.0],
                                               "noise_scale": [0.0, 0.1], "lr": [1e-4, 5e-4, 1e-3]}

    def __init__(self, n_users: int, n_items: int, *, steps: int = 3, alpha: float = 1.5, embed_dim: int = 200,
                 dropout: float = 0.5, noise_scale: float = 0.0, noise_decay: float = 0.5,
                 ideal_weight: float = 0.0, ideal_cutoff: int = 200) -> None:
        super().__init__(n_users, n_items)
        for ok, message in ((steps >= 1, f"steps (T) must be >= 1, got {steps}"),
                            (alpha > 0, f"alpha must be positive, got {alpha}"),
                            (embed_dim >= 1, f"embed_dim must be >= 1, got {embed_dim}"),
                            (0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}"),
                            (noise_scale >= 0, f"noise_scale must be >= 0, got {noise_scale}"),
                            (noise_decay >= 0, f"noise_decay must be >= 0, got {noise_decay}"),
                            (ideal_weight >= 0, f"ideal_weight must be >= 0, got {ideal_weight}"),
                            (ideal_cutoff >= 1, f"ideal_cutoff must be >= 1, got {ideal_cutoff}")):
            if not ok:
                raise DiffrecError(message)
        self.steps, self.alpha, self.dropout = steps, alpha, dropout
        self.noise_scale, self.noise_decay, self.ideal_weight = noise_scale, noise_decay, ideal_weight
        # data-derived state, filled by prepare(): the smoothing operator and the low-pass basis
        self.register_buffer("graph", torch.zeros(n_items, n_items))
        kept = min(ideal_cutoff, n_items) if ideal_weight > 0 else 0
        self.register_buffer("ideal_basis", torch.zeros(kept, n_items))
        self.item_embed = nn.Parameter(torch.empty(n_items, embed_dim))
        self.step_embed = StepScalar(steps)
        self.step_score = StepScalar(steps)
        self.embed_mixer = ChannelMixer(3)
        self.score_mixer = ChannelMixer(4)
        _glorot(self)
        nn.init.xavier_uniform_(self.item_embed)

    # ----- the graph ---------------------------------------------------------------------------
    def prepare(self, train: sp.csr_matrix) -> None:
        gram = item_gram(normalized_interactions(train, 0.25, 0.5))
        values, vectors = top_eigenpairs(gram, max(1, self.ideal_basis.shape[0]))
        top = values[0] if values[0] > 0 else 1.0
        self.graph.copy_(torch.from_numpy(gram / top).float())
        if self.ideal_basis.shape[0]:
            self.ideal_basis.copy_(torch.from_numpy(vectors[:self.ideal_basis.shape[0]]).float())

    def smooth(self, x: torch.Tensor) -> torch.Tensor:
        """xA: the graph operator, blended with the ideal low-pass projection when ideal_weight > 0."""
        sparse = self.training and x.layout == torch.strided and float((x != 0).float().mean()) < 0.1
        out = torch.sparse.mm(x.to_sparse(), self.graph) if sparse else x @ self.graph
        if self.ideal_weight > 0:
            out = (out + self.ideal_weight * ((x @ self.ideal_basis.T) @ self.ideal_basis)) / (1 + self.ideal_weight)
        return out

    def blur(self, x: torch.Tensor, x_smooth: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """z_t = x + α·(t/T)·(xA − x)."""
        weight = t.to(x.dtype).view(-1, 1) if isinstance(t, torch.Tensor) else float(t)
        return x + (self.alpha / self.steps) * weight * (x_smooth - x)

    def denoise(self, z_t: torch.Tensor, c: torch.Tensor, c_smooth: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        z_embed = (z_t / self.n_items) @ self.item_embed
        c_embed = (c / c.abs().sum(dim=1, keepdim=True).clamp(min=1.0)) @ self.item_embed
        latent = self.embed_mixer(z_embed, c_embed, self.step_embed(t))
        return self.score_mixer(latent @ self.item_embed.T, c, c_smooth, self.step_score(t))

    # ----- training and inference ------------------------------------------------------------
    def loss(self, batch: Batch) -> torch.Tensor:
        x = batch.x
        t = torch.randint(1, self.steps + 1, (x.shape[0],), device=x.device)
        with torch.no_grad():
            z_t = self.blur(x, self.smooth(x), t)
            if self.noise_scale > 0:
                sigma = self.noise_scale * self.noise_decay ** (self.steps - t.to(x.dtype))
                z_t = z_t + sigma.view(-1, 1) * torch.randn_like(x)
            c = F.dropout(x, self.dropout, training=True)
            c_smooth = self.smooth(c)
        return (x - self.denoise(z_t, c, c_smooth, t)).pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x_smooth = self.smooth(x)
        z = self.blur(x, x_smooth, self.steps)
        for t in range(self.steps, 0, -1):
            step = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            pred = self.denoise(z, x, x_smooth, step)
            pred_smooth = self.smooth(pred)
            z_prev = self.blur(pred, pred_smooth, t - 1)
            if self.noise_decay > 0:
                z = z_prev + self.noise_decay * (z - self.blur(pred, pred_smooth, t))
            else:
                z = z_prev
        return z

    def describe(self) -> list[str]:
        return [f"GiffCF: T={self.steps}, α={self.alpha}, ideal_weight={self.ideal_weight}"]

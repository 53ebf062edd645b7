"""CF-Diff: diffusion with high-order connectivity (Hou, Park & Shin, SIGIR 2024).

DiffRec's Gaussian diffusion over the user's interaction vector, with a denoiser that also reads the
user's multi-hop neighbourhood: the cross-attention multi-hop autoencoder (CAM-AE). Here the two extra
signals are item vectors of walks on the item-item graph S = D_I^(−1/2) RᵀR D_I^(−1/2): the 2-hop signal
x·S (items of the users who share items with u) and the 3-hop signal x·S² (one more hop), each scaled so
its largest entry is 1. CAM-AE encodes x_t and both signals to ``hidden`` values with one shared linear
encoder, appends the step embedding, lifts every value to a ``d_model`` token, lets the hop tokens attend
over the x_t tokens (queries from the hop signal, keys and values from x_t) for ``layers`` layers, mixes
the two branches (``mix`` of the 2-hop one), and decodes back to n_items.
"""

from __future__ import annotations

from typing import Any, ClassVar

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender
from diffrec_cli.models.denoiser import step_embedding

from diffrec_successors.graph import item_gram, normalized_interactions


class HopBranch(nn.Module):
    """Tokens of one hop signal attending over the x_t tokens, ``layers`` times."""

    def __init__(self, d_model: int, heads: int, layers: int, attention_weight: float, dropout: float) -> None:
        super().__init__()
        self.attention = nn.ModuleList([nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
                                        for _ in range(layers)])
        self.forward_layers = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(layers)])
        self.attention_weight = attention_weight
        self.drop = nn.Dropout(dropout)

    def forward(self, hop_tokens: torch.Tensor, x_tokens: torch.Tensor) -> torch.Tensor:
        h = x_tokens
        for i, (attend, dense) in enumerate(zip(self.attention, self.forward_layers)):
            attended, _ = attend(hop_tokens, h, h, need_weights=False)
            h = self.drop(h + self.attention_weight * self.drop(F.normalize(attended, dim=-1)))
            h = dense(h)
            if i < len(self.attention) - 1:
                h = torch.tanh(h)
        return h


class CAMAE(nn.Module):
    """The cross-attention multi-hop autoencoder: (x_t, 2-hop, 3-hop, t) → x̂_0."""

    def __init__(self, n_items: int, hidden: int, d_model: int, heads: int, layers: int, emb_size: int,
                 dropout: float, mix: float) -> None:
        super().__init__()
        self.emb_size, self.mix = emb_size, mix
        self.encoder = nn.Linear(n_items, hidden)
        self.step_layer = nn.Linear(emb_size, emb_size)
        self.lift = nn.ModuleList([nn.Linear(1, d_model) for _ in range(3)])  # x_t, 2-hop, 3-hop tokens
        self.near = HopBranch(d_model, heads, layers, 0.15, dropout)
        self.far = HopBranch(d_model, heads, layers, 0.5, dropout)
        self.token_out = nn.Linear(d_model, 1)
        self.decoder = nn.Linear(hidden + emb_size, n_items)
        self.drop = nn.Dropout(dropout)

    def forward(self, x_t: torch.Tensor, hop2: torch.Tensor, hop3: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        step = self.step_layer(step_embedding(t, self.emb_size))
        tokens = []
        for i, signal in enumerate((x_t, hop2, hop3)):
            encoded = self.encoder(signal)
            if i == 0:
                encoded = self.drop(encoded)
            tokens.append(self.lift[i](torch.cat([encoded, step], dim=-1).unsqueeze(-1)))
        h = self.mix * self.near(tokens[1], tokens[0]) + (1 - self.mix) * self.far(tokens[2], tokens[0])
        return self.decoder(torch.tanh(self.token_out(h).squeeze(-1)))


def _max_scaled(signal: torch.Tensor) -> torch.Tensor:
    return signal / signal.amax(dim=1, keepdim=True).clamp(min=1e-12)


class CFDiff(Recommender):
    """CF-Diff. schedule: DiffRec's noise schedule component (steps, noise_scale, ... as for DiffRec);
    hidden: the autoencoder's width k; d_model, heads, layers: the attention tokens; emb_size: step
    embedding; dropout; mix: weight of the 2-hop branch; noising_steps: T' of DiffRec's inference.
    """

    name = "cfdiff"
    distributable = True
    components = {"schedule": ("noise_schedule", "linear-var")}
    test_settings: ClassVar[dict[str, Any]] = {"hidden": 8, "d_model": 4, "heads": 1, "layers": 1, "steps": 5}
    # the DiffRec ranges CF-Diff's authors searched (lr, steps, noise scale) plus the CAM-AE sizes
    search_space: ClassVar[dict[str, list]] = {"lr": [1e-5, 1e-4, 1e-3], "steps": [5, 10, 20, 40],
                                               "noise_scale": [1e-4, 1e-3, 5e-3, 1e-2],
                                               "hidden": [128, 256, 512], "d_model": [8, 16, 32], "layers": [1, 2]}

    def __init__(self, n_users: int, n_items: int, *, schedule: Any, hidden: int = 256, d_model: int = 16,
                 heads: int = 2, layers: int = 2, emb_size: int = 10, dropout: float = 0.5, mix: float = 0.9,
                 prediction: str = "x0", step_weighting: bool = True, sampling: str = "importance",
                 noising_steps: int = 0) -> None:
        super().__init__(n_users, n_items)
        for ok, message in ((hidden >= 1, f"hidden must be >= 1, got {hidden}"),
                            (d_model >= 1 and heads >= 1 and d_model % heads == 0,
                             f"d_model must be a positive multiple of heads, got {d_model} and {heads}"),
                            (layers >= 1, f"layers must be >= 1, got {layers}"),
                            (0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}"),
                            (0.0 <= mix <= 1.0, f"mix must lie in [0, 1], got {mix}")):
            if not ok:
                raise DiffrecError(message)
        self.schedule = schedule
        self.diffusion = GaussianDiffusion(schedule.betas(), prediction=prediction, step_weighting=step_weighting,
                                           sampling=sampling)
        if not 0 <= noising_steps <= self.diffusion.steps:
            raise DiffrecError(f"noising_steps (T') must lie in 0..{self.diffusion.steps}, got {noising_steps}")
        self.noising_steps = noising_steps
        self.denoiser = CAMAE(n_items, hidden, d_model, heads, layers, emb_size, dropout, mix)
        self.register_buffer("hop_graph", torch.zeros(n_items, n_items))  # S, filled by prepare()

    def prepare(self, train: sp.csr_matrix) -> None:
        self.hop_graph.copy_(torch.from_numpy(item_gram(normalized_interactions(train, 0.0, 0.5))).float())

    def hop_signals(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        near = x @ self.hop_graph
        return _max_scaled(near), _max_scaled(near @ self.hop_graph)

    def _conditioned(self, x: torch.Tensor):
        hop2, hop3 = self.hop_signals(x)
        return lambda x_t, t: self.denoiser(x_t, hop2, hop3, t)

    def loss(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            denoiser = self._conditioned(batch.x)
        return self.diffusion.training_losses(denoiser, batch.x).mean()

    def step_losses(self) -> list[float | None]:
        return self.diffusion.mean_loss_per_step()

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.diffusion.reverse(self._conditioned(x), x, self.noising_steps, fused=False)

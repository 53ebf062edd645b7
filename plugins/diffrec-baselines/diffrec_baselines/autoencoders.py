"""Autoencoder baselines over a user's interaction vector (paper §4.1.2): CDAE, MultiDAE, MultiDAE++,
MultiVAE and CODIGEM.

Each reads the rows the trainer hands it — the reweighted training matrix when a reweighting strategy is
set — both as input and as reconstruction target, in training and at inference. ``dims`` follows DiffRec's
convention: the decoder side from the latent outwards, mirrored for the encoder, so the paper's default
``[200, 600]`` is n_items → 600 → 200 → 600 → n_items.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.models.base import Batch, Recommender
from diffrec_cli.models.losses import annealed_weight, gaussian_kl

from diffrec_baselines._common import LRS, check

# paper §4.1.3: "CDAE & MultiDAE & MultiDAE++ & MultVAE": weight decay and dropout
AE_SPACE: dict[str, list] = {"lr": LRS, "weight_decay": [0.0, 1e-3, 1e-1], "dropout": [0.1, 0.3, 0.5]}
ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def _dims(dims: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in dims)
    check(len(dims) > 0 and min(dims) > 0, f"dims must be a non-empty list of positive sizes, got {list(dims)}")
    return dims


def _linears(sizes: Sequence[int]) -> nn.ModuleList:
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    for layer in layers:
        # Xavier-normal weights, near-zero biases (as MultVAE's and DiffRec's authors initialise)
        fan_out, fan_in = layer.weight.shape
        nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
        nn.init.normal_(layer.bias, 0.0, 0.001)
    return layers


def _run(layers: nn.ModuleList, h: torch.Tensor, last_activation: bool = False) -> torch.Tensor:
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1 or last_activation:
            h = torch.tanh(h)
    return h


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−Σ_i x_i log softmax(logits)_i per row, averaged over the batch (Mult-VAE's likelihood)."""
    return -(F.log_softmax(logits, dim=-1) * x).sum(dim=-1).mean()


class MultiDAE(Recommender):
    """Mult-DAE (Liang et al., 2018): dropout-corrupted, L2-normalised input, tanh MLP, multinomial loss."""

    name = "multidae"
    distributable = True
    test_settings: ClassVar[dict[str, Any]] = {"dims": [16, 32]}
    search_space: ClassVar[dict[str, list]] = dict(AE_SPACE)

    def __init__(self, n_users: int, n_items: int, *, dims: Sequence[int] = (200, 600), dropout: float = 0.5) -> None:
        super().__init__(n_users, n_items)
        dims = _dims(dims)
        check(0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}")
        decoder = [*dims, n_items]
        self.encoder = _linears(decoder[::-1])
        self.decoder = _linears(decoder)
        self.dropout = dropout

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The training-time corruption of the input (dropout here)."""
        return F.dropout(x, self.dropout, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.corrupt(F.normalize(x, dim=-1))
        return _run(self.decoder, _run(self.encoder, h, last_activation=True))

    def loss(self, batch: Batch) -> torch.Tensor:
        return multinomial_nll(self(batch.x), batch.x)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class MultiDAEPlusPlus(MultiDAE):
    """MultiDAE++ (paper §4.1.2): DiffRec's Gaussian noise corrupts the input, x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with
    t drawn uniformly from 1..T of DiffRec's schedule, and one decoding step recovers x₀ (multinomial loss).
    Inference decodes the clean x₀ once. The schedule settings (steps, noise_scale, …) are DiffRec's."""

    name = "multidae++"
    components = {"schedule": ("noise_schedule", "linear-var")}
    test_settings: ClassVar[dict[str, Any]] = {"dims": [16, 32], "steps": 5}
    search_space: ClassVar[dict[str, list]] = dict(AE_SPACE)  # the noise stays DiffRec's (paper §4.1.3)

    def __init__(self, n_users: int, n_items: int, *, schedule: Any, dims: Sequence[int] = (200, 600),
                 dropout: float = 0.5) -> None:
        super().__init__(n_users, n_items, dims=dims, dropout=dropout)
        self.schedule = schedule
        alpha_bar = np.cumprod(1.0 - np.asarray(schedule.betas(), dtype=np.float64))
        self.register_buffer("sqrt_alpha_bar", torch.from_numpy(np.sqrt(alpha_bar)).float(), persistent=False)
        self.register_buffer("sqrt_one_minus", torch.from_numpy(np.sqrt(1.0 - alpha_bar)).float(), persistent=False)

    def noisy(self, x0: torch.Tensor) -> torch.Tensor:
        t = torch.randint(0, len(self.sqrt_alpha_bar), (x0.shape[0],), device=x0.device)
        return self.sqrt_alpha_bar[t, None] * x0 + self.sqrt_one_minus[t, None] * torch.randn_like(x0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = self.noisy(x)
        return super().forward(x)


class MultiVAE(Recommender):
    """Mult-VAE (Liang et al., 2018) with KL annealing: loss = multinomial NLL + β·KL, where β rises linearly
    from 0 by 1/anneal_steps per training batch up to anneal_cap (anneal_steps = 0: β = anneal_cap from the
    start). The latent size is ``dims[0]``; inference decodes the posterior mean."""

    name = "multivae"
    distributable = True
    test_settings: ClassVar[dict[str, Any]] = {"dims": [16, 32]}
    search_space: ClassVar[dict[str, list]] = {**AE_SPACE, "anneal_cap": [0.0, 0.3, 0.5, 0.7],
                                               "anneal_steps": [0, 200, 500]}

    def __init__(self, n_users: int, n_items: int, *, dims: Sequence[int] = (200, 600), dropout: float = 0.5,
                 anneal_cap: float = 0.3, anneal_steps: int = 200) -> None:
        super().__init__(n_users, n_items)
        dims = _dims(dims)
        check(0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}")
        check(anneal_cap >= 0, f"anneal_cap must be >= 0, got {anneal_cap}")
        check(anneal_steps >= 0, f"anneal_steps must be >= 0, got {anneal_steps}")
        decoder = [*dims, n_items]
        encoder = decoder[::-1]
        encoder[-1] *= 2  # mean and log-variance
        self.encoder = _linears(encoder)
        self.decoder = _linears(decoder)
        self.latent = dims[0]
        self.dropout, self.anneal_cap, self.anneal_steps = dropout, anneal_cap, anneal_steps
        self.updates = 0

    def kl_weight(self) -> float:
        return annealed_weight(self.anneal_cap, self.updates, self.anneal_steps)

    def training_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.dropout(F.normalize(x, dim=-1), self.dropout, self.training)
        h = _run(self.encoder, h)
        return h[:, :self.latent], h[:, self.latent:]

    def loss(self, batch: Batch) -> torch.Tensor:
        mu, logvar = self.encode(batch.x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        logits = _run(self.decoder, z)
        beta = self.kl_weight()
        if self.training and torch.is_grad_enabled():
            self.updates += 1
        return multinomial_nll(logits, batch.x) + beta * gaussian_kl(mu, logvar)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return _run(self.decoder, mu)


class CDAE(Recommender):
    """CDAE (Wu et al., 2016): dropout-corrupted input plus a per-user vector into one hidden layer,
    h = act(W x̃ + V_u + b), item probabilities σ(W' h + b'), binary cross-entropy against the row.
    The default activation is relu: on ML-1M a sigmoid hidden layer stalls at about half the recall."""

    name = "cdae"
    distributable = True
    test_settings: ClassVar[dict[str, Any]] = {"hidden": 16}
    search_space: ClassVar[dict[str, list]] = {**AE_SPACE, "activation": ["sigmoid", "relu", "tanh"]}

    def __init__(self, n_users: int, n_items: int, *, hidden: int = 200, dropout: float = 0.5,
                 activation: str = "relu") -> None:
        super().__init__(n_users, n_items)
        check(hidden > 0, f"hidden must be positive, got {hidden}")
        check(0.0 <= dropout < 1.0, f"dropout must lie in [0, 1), got {dropout}")
        check(activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.encoder, self.decoder = _linears([n_items, hidden]), _linears([hidden, n_items])
        self.user_emb = nn.Embedding(n_users, hidden)
        nn.init.normal_(self.user_emb.weight, 0.0, 0.01)
        self.dropout, self.activation = dropout, activation

    def make_optimizer(self, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """Adam with ``weight_decay`` as the L2 term λ/2·‖θ‖² of CDAE's objective (added to the gradient):
        the per-user vectors see one update per epoch, so AdamW's decoupled decay would barely touch them."""
        return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)

    def forward(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder[0](F.dropout(x, self.dropout, self.training)) + self.user_emb(users)
        return self.decoder[0](ACTIVATIONS[self.activation](h))

    def loss(self, batch: Batch) -> torch.Tensor:
        logits = self(batch.users, batch.x)
        return F.binary_cross_entropy_with_logits(logits, batch.x, reduction="none").sum(dim=-1).mean()

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self(users, x)


class CODIGEM(Recommender):
    """CODIGEM (Walker et al., 2022) as the DiffRec paper describes it: a diffusion chain with a constant
    β, z₁ = √(1−β) x + √β ε, z_{t+1} = √(1−β) z_t + √β ε, and one five-layer AE per reverse step: the first
    reconstructs x from z₁ (Gaussian likelihood), each other one maps z_{t+1} to the mean and log-variance
    of p(z_t | z_{t+1}). Only the first AE is used for prediction, on the mean of z₁ (√(1−β) x).

    The loss is the negative ELBO's terms that have parameters: ½‖x − AE₁(z₁)‖² − Σ_t log p(z_t | z_{t+1}).
    """

    name = "codigem"
    distributable = True
    test_settings: ClassVar[dict[str, Any]] = {"steps": 3, "hidden": 16}
    search_space: ClassVar[dict[str, list]] = {"lr": LRS, "steps": [2, 5, 10, 40, 50, 100],
                                               "beta": [5e-5, 1e-4, 5e-4]}

    def __init__(self, n_users: int, n_items: int, *, steps: int = 5, beta: float = 1e-4, hidden: int = 200) -> None:
        super().__init__(n_users, n_items)
        check(steps >= 1, f"steps must be >= 1, got {steps}")
        check(0.0 < beta < 1.0, f"beta must lie in (0, 1), got {beta}")
        check(hidden > 0, f"hidden must be positive, got {hidden}")
        # five layers of units: n_items → hidden → hidden → hidden → output
        self.first = _linears([n_items, hidden, hidden, hidden, n_items])
        self.reverse = nn.ModuleList(_linears([n_items, hidden, hidden, hidden, 2 * n_items])
                                     for _ in range(steps - 1))
        self.steps, self.beta = steps, beta

    def loss(self, batch: Batch) -> torch.Tensor:
        x = batch.x
        keep, spread = math.sqrt(1.0 - self.beta), math.sqrt(self.beta)
        zs = [keep * x + spread * torch.randn_like(x)]
        for _ in range(1, self.steps):
            zs.append(keep * zs[-1] + spread * torch.randn_like(x))
        total = 0.5 * (x - _run(self.first, zs[0])).pow(2).sum(dim=-1)
        for t, net in enumerate(self.reverse):
            mu, logvar = _run(net, zs[t + 1]).chunk(2, dim=-1)
            # −log N(z_t; mu, exp(logvar)) without the constant
            total = total + 0.5 * (logvar + (zs[t] - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)
        return total.mean()

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _run(self.first, math.sqrt(1.0 - self.beta) * x)
